//! `kubectl rollgate stale`: flags whose `Stale` condition is True (complete at 100% for
//! longer than `staleAfter`), longest at 100% first. Time to remove them from the code.

use k8s_openapi::jiff::Timestamp;

use std::cmp::Ordering;

use super::args::{GlobalArgs, OutputFormat};
use super::client::{Cluster, Fetched, Scope};
use super::error::PluginError;
use super::list::{nothing_found, structured};
use super::output::print_output;
use super::render::{self, Table, condition, human_duration, seconds_since};
use rollgate_core::crd::{DEFAULT_STALE_AFTER, FeatureFlag};
use rollgate_core::engine::STALE;

pub(crate) async fn run(cluster: &Cluster, global: &GlobalArgs) -> Result<(), PluginError> {
    let scope = cluster.scope(global);
    let listed = cluster.list_flags(&scope).await?;
    listed.warn_unreadable();
    let mut stale: Vec<&Fetched> = listed.flags.iter().filter(|f| is_stale(&f.flag)).collect();
    stale.sort_by(|a, b| stale_order(&a.flag, &b.flag));
    let flags: Vec<FeatureFlag> = stale.iter().map(|f| f.flag.clone()).collect();
    if flags.is_empty() && !structured(global.output) {
        eprintln!("{}", nothing_found("stale flags", &scope));
        return Ok(());
    }
    let wide = global.output == Some(OutputFormat::Wide);
    let all_namespaces = scope == Scope::All;
    print_output(
        global.output,
        || render_stale(&flags, Timestamp::now(), wide, all_namespaces),
        || render::list_value(stale.iter().map(|f| &f.raw)),
    )
}

/// Whether the flag's `Stale` condition is True.
pub fn is_stale(flag: &FeatureFlag) -> bool {
    condition(flag, STALE).is_some_and(|c| c.status == "True")
}

/// Longest at 100% first, then by namespace and name.
pub fn stale_order(a: &FeatureFlag, b: &FeatureFlag) -> Ordering {
    at_full_since(a)
        .cmp(&at_full_since(b))
        .then_with(|| a.metadata.namespace.cmp(&b.metadata.namespace))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// When the flag reached 100%: `completedAt`, else the start of its last step.
fn at_full_since(flag: &FeatureFlag) -> Option<Timestamp> {
    let status = flag.status.as_ref()?;
    status
        .completed_at
        .as_ref()
        .or(status.step_started_at.as_ref())
        .map(|t| t.0)
}

/// The table of `stale`.
pub fn render_stale(
    flags: &[FeatureFlag],
    now: Timestamp,
    wide: bool,
    all_namespaces: bool,
) -> String {
    let mut headers = Vec::new();
    if all_namespaces {
        headers.push("NAMESPACE");
    }
    headers.extend(["NAME", "KEY", "OWNER", "AT 100% FOR", "STALE AFTER"]);
    if wide {
        headers.push("MESSAGE");
    }
    let mut table = Table::new(headers);
    for flag in flags {
        let mut row = Vec::new();
        if all_namespaces {
            row.push(flag.metadata.namespace.clone().unwrap_or_default());
        }
        row.push(flag.metadata.name.clone().unwrap_or_default());
        row.push(flag.key().to_string());
        row.push(render::owner_text(flag));
        row.push(
            at_full_since(flag)
                .map(|since| human_duration(seconds_since(since, now)))
                .unwrap_or_else(|| "-".to_string()),
        );
        row.push(
            flag.spec
                .stale_after
                .clone()
                .unwrap_or_else(|| DEFAULT_STALE_AFTER.to_string()),
        );
        if wide {
            row.push(
                condition(flag, STALE)
                    .map(|c| c.message.clone())
                    .unwrap_or_default(),
            );
        }
        table.row(row);
    }
    table.render("")
}
