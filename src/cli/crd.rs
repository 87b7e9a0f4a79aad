use std::process::ExitCode;

pub fn run() -> ExitCode {
    super::print_then(&crate::crd::crd_yaml(), ExitCode::SUCCESS)
}
