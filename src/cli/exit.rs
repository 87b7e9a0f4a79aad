//! Exit codes, and the ways a subcommand ends with one. Every subcommand uses these, so they
//! live apart from `mod.rs`, which uses the subcommands.

use std::process::ExitCode;

/// Exit code for bad input: unreadable or malformed files, invalid flags.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Prints `text` to stdout and returns `code`; a closed pipe keeps `code`, any other write
/// failure is reported with exit code 1.
pub fn print_then(text: &str, code: ExitCode) -> ExitCode {
    match crate::output::print(text) {
        Ok(_) => code,
        Err(error) => {
            eprintln!("rollgate: cannot write to standard output: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a one-line error and returns the bad-input exit code.
pub fn bad_input(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("rollgate: {message}");
    ExitCode::from(EXIT_BAD_INPUT)
}
