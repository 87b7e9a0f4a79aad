//! `kubectl-rollgate`: the kubectl plugin. On the PATH, `kubectl rollgate …` runs it.

fn main() -> std::process::ExitCode {
    rollgate::plugin::main()
}
