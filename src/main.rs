fn main() -> std::process::ExitCode {
    rollgate::cli::run()
}
