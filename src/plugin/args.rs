//! The command line of `kubectl rollgate`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use rollgate_core::duration::parse_duration;
use rollgate_core::engine::Verb;

use super::error::PluginError;

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
    /// Show one flag: its steps, the time left in the pause, the latest analyses, its
    /// guardrails, conditions and events.
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
