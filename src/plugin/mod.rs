//! `kubectl rollgate`: the kubectl plugin (binary `kubectl-rollgate`).
//!
//! - `list` and `stale` read flags; `status` shows one flag, `--watch` redraws it;
//! - `promote [--full]`, `pause`, `resume`, `abort`, `retry`, `kill` and `unkill` write
//!   the `rollgate.dev/request` annotation with a fresh id and wait until
//!   `status.lastRequest` shows the operator handled it.
//!
//! Rendering is pure (`list::render_list`, `status::render_status`, `stale::render_stale`)
//! and tested on fixtures; [`client`] does all I/O. Exit codes: 0 done, 1 refused, not
//! handled in time or an API failure, 2 bad input or a flag that does not exist.

pub mod args;
pub mod client;
pub mod error;
pub mod list;
pub mod output;
pub mod render;
pub mod request;
pub mod stale;
pub mod status;

use std::process::ExitCode;

use clap::Parser;

pub use args::{
    GlobalArgs, OutputFormat, PluginArgs, PluginCommand, PromoteArgs, RequestArgs, StatusArgs,
};
pub use client::{Cluster, Fetched, Listed, Scope};
pub use error::{EXIT_BAD_INPUT, EXIT_FAILED, PluginError};

/// Entry point of the `kubectl-rollgate` binary.
pub fn main() -> ExitCode {
    let args = match PluginArgs::try_parse() {
        Ok(args) => args,
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
    run(args)
}

/// Runs parsed arguments on a small runtime; prints `error: <sentence>` on failure.
pub fn run(args: PluginArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    match runtime.block_on(dispatch(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn dispatch(args: PluginArgs) -> Result<(), PluginError> {
    args.check()?;
    let PluginArgs { global, command } = args;
    let cluster = Cluster::connect(&global).await?;
    match (&command, command.request()) {
        (PluginCommand::List, _) => list::run(&cluster, &global).await,
        (PluginCommand::Stale, _) => stale::run(&cluster, &global).await,
        (PluginCommand::Status(args), _) => status::run(&cluster, &global, args).await,
        (_, Some((verb, args))) => request::run(&cluster, &global, verb, args).await,
        (_, None) => Ok(()),
    }
}
