//! The `rollgate` command line. Every subcommand returns an exit code; bad input is one
//! line on stderr naming the file and field, with exit code 2.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod analyze;
mod crd;
mod eval;
mod operator;
mod prometheus_args;
mod simulate;
mod validate;

/// Exit code for bad input: unreadable or malformed files, invalid flags.
pub const EXIT_BAD_INPUT: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "rollgate",
    version,
    about = "Metric-gated feature-flag rollouts for Kubernetes"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the FeatureFlag CustomResourceDefinition as YAML.
    Crd,
    /// Check FeatureFlag manifests offline against the CRD's rules.
    Validate(validate::ValidateArgs),
    /// Evaluate one flag of a flag document for one user.
    Eval(eval::EvalArgs),
    /// Run one flag's metric analysis against Prometheus as a dry run.
    Analyze(analyze::AnalyzeArgs),
    /// Replay a flag's ramp on recorded metrics with the rollout engine on a virtual clock.
    Simulate(simulate::SimulateArgs),
    /// Run the Kubernetes operator.
    Operator(crate::operator::OperatorArgs),
}

/// Parses arguments and runs the chosen subcommand.
pub fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let code = if error.use_stderr() {
                EXIT_BAD_INPUT
            } else {
                0
            };
            let _ = error.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Crd => crd::run(),
        Command::Validate(args) => validate::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Analyze(args) => analyze::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Operator(args) => operator::run(args),
    }
}

/// Prints `text` to stdout and returns `code`; a closed pipe keeps `code`, any other write
/// failure is reported with exit code 1.
fn print_then(text: &str, code: ExitCode) -> ExitCode {
    match crate::output::print(text) {
        Ok(_) => code,
        Err(error) => {
            eprintln!("rollgate: cannot write to standard output: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Prints a one-line error and returns the bad-input exit code.
fn bad_input(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("rollgate: {message}");
    ExitCode::from(EXIT_BAD_INPUT)
}
