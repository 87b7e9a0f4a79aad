//! `kubectl rollgate list`: every flag with phase, percent, step, last analysis and age.

use k8s_openapi::jiff::Timestamp;

use super::args::{GlobalArgs, OutputFormat};
use super::client::{Cluster, Scope};
use super::error::PluginError;
use super::output::print_output;
use super::render::{self, Table, age, percent_text, step_text};
use rollgate_core::crd::FeatureFlag;

/// Which columns the table has.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// `-o wide`: key, owner, failures and the last request too.
    pub wide: bool,
    /// `-A`: a NAMESPACE column first.
    pub all_namespaces: bool,
}

pub(crate) async fn run(cluster: &Cluster, global: &GlobalArgs) -> Result<(), PluginError> {
    let scope = cluster.scope(global);
    let listed = cluster.list_flags(&scope).await?;
    listed.warn_unreadable();
    let flags: Vec<FeatureFlag> = listed.flags.iter().map(|f| f.flag.clone()).collect();
    if listed.raw().is_empty() && !structured(global.output) {
        eprintln!("{}", nothing_found("flags", &scope));
        return Ok(());
    }
    let options = ListOptions {
        wide: global.output == Some(OutputFormat::Wide),
        all_namespaces: scope == Scope::All,
    };
    print_output(
        global.output,
        || render_list(&flags, Timestamp::now(), options),
        || render::list_value(listed.raw()),
    )
}

/// `-o json` or `-o yaml`.
pub(crate) fn structured(format: Option<OutputFormat>) -> bool {
    matches!(format, Some(OutputFormat::Json | OutputFormat::Yaml))
}

/// kubectl's "No resources found" sentence, for flags or stale flags.
pub fn nothing_found(what: &str, scope: &Scope) -> String {
    match scope {
        Scope::All => format!("No {what} found in any namespace."),
        Scope::Namespace(namespace) => format!("No {what} found in namespace '{namespace}'."),
    }
}

/// The table of `list`.
pub fn render_list(flags: &[FeatureFlag], now: Timestamp, options: ListOptions) -> String {
    let mut headers = Vec::new();
    if options.all_namespaces {
        headers.push("NAMESPACE");
    }
    headers.extend(["NAME", "PHASE", "PERCENT", "STEP", "LAST ANALYSIS", "AGE"]);
    if options.wide {
        headers.extend(["KEY", "OWNER", "FAILURES", "LAST REQUEST"]);
    }
    let mut table = Table::new(headers);
    for flag in flags {
        let mut row = Vec::new();
        if options.all_namespaces {
            row.push(flag.metadata.namespace.clone().unwrap_or_default());
        }
        row.push(flag.metadata.name.clone().unwrap_or_default());
        row.push(render::phase(flag).to_string());
        row.push(percent_text(flag));
        row.push(step_text(flag));
        row.push(last_analysis(flag, now));
        row.push(
            flag.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| age(t, now))
                .unwrap_or_else(|| "-".to_string()),
        );
        if options.wide {
            row.push(flag.key().to_string());
            row.push(render::owner_text(flag));
            row.push(failures(flag));
            row.push(last_request(flag, now));
        }
        table.row(row);
    }
    table.render("")
}

/// `Pass 40s ago`, from the newest analysis run; `-` when none ran.
pub fn last_analysis(flag: &FeatureFlag, now: Timestamp) -> String {
    let Some(status) = &flag.status else {
        return "-".to_string();
    };
    match (status.analyses.last(), &status.last_analysis_at) {
        (Some(run), _) => format!(
            "{} {} ago",
            render::verdict_text(run.verdict),
            age(&run.time, now)
        ),
        (None, Some(at)) => format!("{} ago", age(at, now)),
        (None, None) => "-".to_string(),
    }
}

/// Failed analyses in a row against the limit that rolls back: `1/2`; `-` without analysis.
fn failures(flag: &FeatureFlag) -> String {
    let Some(analysis) = flag.spec.rollout.as_ref().and_then(|r| r.analysis.as_ref()) else {
        return "-".to_string();
    };
    if analysis.metrics.is_empty() {
        return "-".to_string();
    }
    let count = flag
        .status
        .as_ref()
        .map(|s| s.consecutive_failures)
        .unwrap_or_default();
    format!("{count}/{}", analysis.failure_limit)
}

/// `promote Applied 2m ago`; `-` when no request was handled.
fn last_request(flag: &FeatureFlag, now: Timestamp) -> String {
    match flag.status.as_ref().and_then(|s| s.last_request.as_ref()) {
        Some(request) => format!(
            "{} {} {} ago",
            request.verb,
            render::outcome_text(request.outcome),
            age(&request.handled_at, now)
        ),
        None => "-".to_string(),
    }
}
