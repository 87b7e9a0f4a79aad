//! The `rollgate` command line. Every subcommand returns an exit code; bad input is one
//! line on stderr naming the file and field, with exit code 2.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod analyze;
mod crd;
mod eval;
mod exit;
mod operator;
mod prometheus_args;
mod relay;
mod simulate;
mod validate;

pub use exit::EXIT_BAD_INPUT;

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
    /// Print the FeatureFlag and Segment CustomResourceDefinitions as YAML, or their reference
    /// as Markdown.
    Crd(crd::CrdArgs),
    /// Check FeatureFlag and Segment manifests offline against the CRDs' rules.
    Validate(validate::ValidateArgs),
    /// Evaluate one flag of a flag document for one user.
    Eval(eval::EvalArgs),
    /// Run one flag's analysis (metrics and guardrails) against Prometheus as a dry run.
    Analyze(analyze::AnalyzeArgs),
    /// Replay a flag's ramp on recorded metrics with the rollout engine on a virtual clock.
    Simulate(simulate::SimulateArgs),
    /// Run the Kubernetes operator.
    Operator(crate::operator::OperatorArgs),
    /// Serve flags over OFREP (OpenFeature Remote Evaluation Protocol) to any OpenFeature client.
    Relay(crate::relay::RelayArgs),
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
        Command::Crd(args) => crd::run(&args),
        Command::Validate(args) => validate::run(&args),
        Command::Eval(args) => eval::run(&args),
        Command::Analyze(args) => analyze::run(&args),
        Command::Simulate(args) => simulate::run(&args),
        Command::Operator(args) => operator::run(args),
        Command::Relay(args) => relay::run(args),
    }
}
