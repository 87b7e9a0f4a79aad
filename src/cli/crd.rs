use std::process::ExitCode;

pub fn run() -> ExitCode {
    super::exit::print_then(&rollgate_core::crd::crd_yaml(), ExitCode::SUCCESS)
}
