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

pub mod client;
pub mod error;
pub mod list;
pub mod render;
pub mod request;
pub mod stale;
pub mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use client::{Cluster, Fetched, Listed, Scope};
pub use error::{EXIT_BAD_INPUT, EXIT_FAILED, PluginError};

use rollgate_core::duration::parse_duration;
use rollgate_core::engine::Verb;

#[derive(Debug, Parser)]
#[command(
    name = "kubectl-rollgate",
    bin_name = "kubectl rollgate",
    version,
    about = "Inspect and steer Rollgate FeatureFlags",
    after_help = "Requests (promote, pause, resume, abort, retry, kill, unkill) set the annotation \
                  rollgate.dev/request on the flag and wait for the operator to record the outcome \
                  in status.lastRequest. Exit codes: 0 done, 1 refused or not handled, 2 bad input \
                  or not found."
)]
pub struct PluginArgs {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: PluginCommand,
}

/// The kubectl options every subcommand takes.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use (default: the current context).
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// Namespace of the flag (default: the namespace of the context).
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// List flags in every namespace (list and stale).
    #[arg(short = 'A', long = "all-namespaces", global = true)]
    pub all_namespaces: bool,

    /// Output format.
    #[arg(short = 'o', long, global = true, value_enum, value_name = "FORMAT")]
    pub output: Option<OutputFormat>,
}

/// `-o`: kubectl's output formats that make sense here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// The objects as JSON (a `List` for list and stale).
    Json,
    /// The objects as YAML (a `List` for list and stale).
    Yaml,
    /// The table with more columns, or every analysis in status.
    Wide,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List flags with their phase, percent, step, last analysis and age.
    #[command(visible_alias = "ls", visible_alias = "get")]
    List,
    /// Show one flag: its steps, the time left in the pause, the latest analyses,
    /// conditions and events.
    Status(StatusArgs),
    /// Move to the next step now (--full: straight to the last step).
    Promote(PromoteArgs),
    /// Hold the ramp at its current step; analysis keeps running.
    Pause(RequestArgs),
    /// Continue a paused ramp.
    Resume(RequestArgs),
    /// Roll back to 0% until a retry or a spec change.
    Abort(RequestArgs),
    /// Restart a rolled-back ramp at step 0.
    Retry(RequestArgs),
    /// Turn the flag off for everyone until unkill, whatever the spec says.
    Kill(RequestArgs),
    /// Lift a kill: the flag starts afresh.
    Unkill(RequestArgs),
    /// List flags that have been complete at 100% for longer than their staleAfter.
    Stale,
}

#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// The FeatureFlag's name.
    pub name: String,
    /// Redraw every 2 seconds until Ctrl-C.
    #[arg(short = 'w', long)]
    pub watch: bool,
}

#[derive(Debug, Clone, Args)]
pub struct RequestArgs {
    /// The FeatureFlag's name.
    pub name: String,
    /// How long to wait for the operator to handle the request, e.g. 30s, 2m.
    #[arg(long, default_value = "30s", value_parser = parse_timeout, value_name = "DURATION")]
    pub timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    #[command(flatten)]
    pub request: RequestArgs,
    /// Go straight to the last step, even past a failed or held analysis.
    #[arg(long)]
    pub full: bool,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let timeout = parse_duration(text).map_err(|e| e.to_string())?;
    if timeout.is_zero() {
        return Err("the timeout must be more than 0s".to_string());
    }
    Ok(timeout)
}

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

impl PluginArgs {
    /// Checks what clap cannot: `-A` only where a command lists.
    pub fn check(&self) -> Result<(), PluginError> {
        let lists = matches!(self.command, PluginCommand::List | PluginCommand::Stale);
        if self.global.all_namespaces && !lists {
            return Err(PluginError::BadInput(
                "-A/--all-namespaces works with list and stale only; name the namespace with -n"
                    .to_string(),
            ));
        }
        Ok(())
    }
}

impl PluginCommand {
    /// The request verb and its arguments, for the commands that send one.
    pub fn request(&self) -> Option<(Verb, &RequestArgs)> {
        match self {
            Self::Promote(args) if args.full => Some((Verb::PromoteFull, &args.request)),
            Self::Promote(args) => Some((Verb::Promote, &args.request)),
            Self::Pause(args) => Some((Verb::Pause, args)),
            Self::Resume(args) => Some((Verb::Resume, args)),
            Self::Abort(args) => Some((Verb::Abort, args)),
            Self::Retry(args) => Some((Verb::Retry, args)),
            Self::Kill(args) => Some((Verb::Kill, args)),
            Self::Unkill(args) => Some((Verb::Unkill, args)),
            Self::List | Self::Status(_) | Self::Stale => None,
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

/// Prints text to stdout, or the value as JSON/YAML for `-o json|yaml`.
pub(crate) fn print_output(
    format: Option<OutputFormat>,
    text: impl FnOnce() -> String,
    value: impl FnOnce() -> serde_json::Value,
) -> Result<(), PluginError> {
    let rendered = render_output(format, text, value)?;
    // A reader that went away has nothing left to read; the command still succeeds.
    let _printed = crate::output::print(&rendered).map_err(PluginError::Stdout)?;
    Ok(())
}

/// Text, or the value as JSON/YAML for `-o json|yaml`.
pub(crate) fn render_output(
    format: Option<OutputFormat>,
    text: impl FnOnce() -> String,
    value: impl FnOnce() -> serde_json::Value,
) -> Result<String, PluginError> {
    Ok(match format {
        Some(OutputFormat::Json) => render::to_json(&value()).map_err(PluginError::Output)?,
        Some(OutputFormat::Yaml) => render::to_yaml(&value()).map_err(PluginError::Output)?,
        Some(OutputFormat::Wide) | None => text(),
    })
}
