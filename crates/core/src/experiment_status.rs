//! How a verdict of the statistics becomes the experiment's status: its kind, the one-line
//! summaries the operator puts in status, conditions and events, and the per-variant table
//! of `kubectl rollgate status`. The statistics know nothing of the CRD; this module joins
//! the two. Pure; no I/O.

use std::fmt::Write as _;

use crate::crd::{ExperimentDecision, ExperimentStatus};
use crate::experiment::{Decision, Interval, VariantStats, Winner};

/// The per-variant table of an experiment, for `kubectl rollgate status`:
///
/// ```text
/// Experiment: Winner: treatment beats control: 11.50% vs 10.00% conversion, …
/// Started 2025-01-01T00:00:00Z; last look 2025-01-01T06:00:00Z; shipped treatment
/// VARIANT    WEIGHT  EXPOSURES  CONVERSIONS  RATE    LIFT         INTERVAL              P-VALUE  ADJ. P
/// control    50%     20000      2000         10.00%  -            -                     -        -
/// treatment  50%     20000      2300         11.50%  +1.50 pts    [+0.85, +2.15] pts    <0.0001  <0.0001  winner, shipped
/// Sample ratio: ok (chi² = 0.00, p = 1.0000)
/// ```
///
/// Lifts and intervals are absolute, in percentage points of conversion rate, against the
/// control (the first row); see `docs/experiments.md`.
pub fn render_experiment(status: &ExperimentStatus) -> String {
    let mut out = String::new();
    let summary = if status.message.is_empty() {
        String::new()
    } else {
        format!(": {}", status.message)
    };
    let _ = writeln!(out, "Experiment: {}{summary}", status.decision);
    let mut line = format!("Started {}", status.started_at.0);
    if let Some(at) = &status.last_look_at {
        let _ = write!(line, "; last look {}", at.0);
    }
    if let Some(shipped) = &status.shipped_variant {
        let _ = write!(line, "; shipped {shipped}");
        if let Some(at) = &status.shipped_at {
            let _ = write!(line, " at {}", at.0);
        }
    }
    let _ = writeln!(out, "{line}");
    if status.variants.is_empty() {
        let _ = writeln!(out, "No look yet.");
    } else {
        let mut rows = vec![
            [
                "VARIANT",
                "WEIGHT",
                "EXPOSURES",
                "CONVERSIONS",
                "RATE",
                "LIFT",
                "INTERVAL",
                "P-VALUE",
                "ADJ. P",
                "",
            ]
            .map(str::to_string),
        ];
        let winner = status.winner.as_ref().map(|w| w.variant.as_str());
        for variant in &status.variants {
            let mut notes = Vec::new();
            if Some(variant.name.as_str()) == winner {
                notes.push("winner");
            }
            if status.shipped_variant.as_deref() == Some(variant.name.as_str()) {
                notes.push("shipped");
            }
            if variant.significant {
                notes.push("significant");
            }
            let dash = || "-".to_string();
            rows.push([
                variant.name.clone(),
                format!("{}%", variant.weight),
                variant.exposures.to_string(),
                variant.conversions.to_string(),
                percent(variant.rate),
                variant
                    .lift
                    .map_or_else(dash, |l| format!("{} pts", signed_points(l))),
                variant.interval.as_ref().map_or_else(dash, interval_points),
                variant.p_value.map_or_else(dash, p_value),
                variant.adjusted_p_value.map_or_else(dash, p_value),
                notes.join(", "),
            ]);
        }
        out.push_str(&table(&rows));
    }
    if let Some(srm) = &status.srm {
        let verdict = if srm.mismatch {
            "MISMATCH: halted, never ships"
        } else if srm.applicable {
            "ok"
        } else {
            "too few exposures to check"
        };
        let _ = writeln!(
            out,
            "Sample ratio: {verdict} (chi² = {:.2}, p = {})",
            srm.statistic,
            p_value(srm.p_value)
        );
    }
    if let Some(error) = &status.error {
        let _ = writeln!(out, "Latest look failed: {error}");
    }
    out
}

/// Left-aligned columns separated by two spaces, without trailing blanks.
fn table(rows: &[[String; 10]]) -> String {
    let mut widths = [0usize; 10];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (cell, width) in row.iter().zip(widths) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The status's one-line summary of a decision.
pub fn decision_message(
    decision: &Decision,
    variants: &[VariantStats],
    alpha: f64,
    max_duration: Option<&str>,
) -> String {
    match decision {
        Decision::Collecting {
            min_exposures,
            required,
        } => format!("collecting: {min_exposures} of {required} exposures in the smallest variant"),
        Decision::Running => {
            let best = variants
                .iter()
                .skip(1)
                .filter_map(|v| Some((v, v.adjusted_p_value?)))
                .min_by(|a, b| a.1.total_cmp(&b.1));
            match best {
                Some((variant, p)) => format!(
                    "running: no significant difference yet (lowest adjusted p = {} for {}, needs ≤ {alpha})",
                    p_value(p),
                    variant.name
                ),
                None => "running: waiting for the planned sample size".to_string(),
            }
        }
        Decision::Winner(winner) => winner_message(winner, variants, alpha),
        Decision::NoDifference => {
            "the planned analysis found no significant difference between the variants".to_string()
        }
        Decision::Inconclusive => format!(
            "no winner after maxDuration {}: the variants keep serving until the spec changes",
            max_duration.unwrap_or("-")
        ),
        Decision::SampleRatioMismatch {
            statistic,
            p_value: p,
        } => {
            let split = variants
                .iter()
                .map(|v| format!("{} {} ({}%)", v.name, v.exposures, v.weight))
                .collect::<Vec<_>>()
                .join(", ");
            format!(
                "exposures {split} do not match the weights (chi² = {statistic:.2}, p = {}): halted, never ships; \
                 fix the assignment or the exposure counting, then change the salt to restart",
                p_value(*p)
            )
        }
    }
}

/// e.g. `treatment beats control: 11.50% vs 10.00% conversion, lift +1.50 points (+15.0%),
/// 95% interval [+0.85, +2.15] points, adjusted p = 0.0001`.
pub fn winner_message(winner: &Winner, variants: &[VariantStats], alpha: f64) -> String {
    let rate_of = |name: &str| {
        variants
            .iter()
            .find(|v| v.name == name)
            .map_or_else(|| "?".to_string(), |v| percent(v.rate))
    };
    let beats = if winner.control {
        format!(
            "{} beats every treatment (best: {})",
            winner.variant, winner.compared_to
        )
    } else {
        format!("{} beats {}", winner.variant, winner.compared_to)
    };
    let relative = winner
        .relative_lift
        .map(|r| format!(" ({:+.1}%)", r * 100.0))
        .unwrap_or_default();
    format!(
        "{beats}: {} vs {} conversion, lift {} points{relative}, {} interval {} points, adjusted p = {}",
        rate_of(&winner.variant),
        rate_of(&winner.compared_to),
        signed_points(winner.lift),
        level(alpha),
        interval_values(&winner.interval),
        p_value(winner.p_value)
    )
}

/// What a decision means for the status: the kind, without its data.
pub fn decision_kind(decision: &Decision) -> ExperimentDecision {
    match decision {
        Decision::Collecting { .. } => ExperimentDecision::Collecting,
        Decision::Running => ExperimentDecision::Running,
        Decision::Winner(_) => ExperimentDecision::Winner,
        Decision::NoDifference => ExperimentDecision::NoDifference,
        Decision::Inconclusive => ExperimentDecision::Inconclusive,
        Decision::SampleRatioMismatch { .. } => ExperimentDecision::SampleRatioMismatch,
    }
}

/// A rate as a percentage with two decimals: `0.115` → `11.50%`.
pub fn percent(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

/// A difference of rates in percentage points, signed: `0.015` → `+1.50`.
pub fn signed_points(difference: f64) -> String {
    format!("{:+.2}", difference * 100.0)
}

fn interval_values(interval: &Interval) -> String {
    format!(
        "[{}, {}]",
        signed_points(interval.lower),
        signed_points(interval.upper)
    )
}

fn interval_points(interval: &Interval) -> String {
    format!("{} pts", interval_values(interval))
}

/// Four decimals, or `<0.0001`.
pub fn p_value(p: f64) -> String {
    if p < 0.0001 {
        "<0.0001".to_string()
    } else {
        format!("{p:.4}")
    }
}

/// The confidence level of the intervals: `0.05` → `95%`.
pub fn level(alpha: f64) -> String {
    let level = format!("{:.2}", (1.0 - alpha) * 100.0);
    let level = level.trim_end_matches('0').trim_end_matches('.');
    format!("{level}%")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::experiment::{
        ExperimentConfig, ExperimentState, VariantCounts, evaluate_experiment,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use std::time::Duration;

    fn concluded() -> ExperimentStatus {
        let counts = [
            VariantCounts::new("control", 50, 20_000, 2_000),
            VariantCounts::new("treatment", 50, 20_000, 2_300),
        ];
        let verdict = evaluate_experiment(
            &ExperimentConfig::default(),
            &counts,
            &ExperimentState::default(),
            Duration::from_secs(3600),
        )
        .unwrap();
        let Decision::Winner(winner) = &verdict.decision else {
            panic!("{:?}", verdict.decision)
        };
        let mut status = ExperimentStatus::started(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        status.decision = decision_kind(&verdict.decision);
        status.message = decision_message(&verdict.decision, &verdict.variants, 0.05, None);
        status.winner = Some(winner.clone());
        status.variants = verdict.variants;
        status.srm = Some(verdict.srm);
        status.shipped_variant = Some("treatment".into());
        status.state = verdict.state;
        status
    }

    #[test]
    fn the_table_has_one_row_per_variant_and_marks_the_winner() {
        let text = render_experiment(&concluded());
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with("Experiment: Winner: treatment beats control: 11.50% vs 10.00%"),
            "{text}"
        );
        assert!(lines[0].contains("lift +1.50 points (+15.0%)"), "{text}");
        assert!(lines[0].contains("95% interval ["), "{text}");
        assert!(lines[1].contains("shipped treatment"), "{text}");
        assert!(lines[2].starts_with("VARIANT"), "{text}");
        assert!(lines[3].starts_with("control "), "{text}");
        assert!(lines[3].contains("10.00%"), "{text}");
        assert!(lines[4].starts_with("treatment "), "{text}");
        assert!(lines[4].contains("+1.50 pts"), "{text}");
        assert!(lines[4].ends_with("winner, shipped, significant"), "{text}");
        assert!(lines[5].starts_with("Sample ratio: ok"), "{text}");
        assert!(text.lines().all(|line| line == line.trim_end()));
    }

    #[test]
    fn a_fresh_experiment_has_no_table_yet() {
        let status = ExperimentStatus::started(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        let text = render_experiment(&status);
        assert!(text.starts_with("Experiment: Collecting\n"), "{text}");
        assert!(text.contains("No look yet."), "{text}");
    }

    #[test]
    fn numbers_are_formatted_for_people() {
        assert_eq!(level(0.05), "95%");
        assert_eq!(level(0.01), "99%");
        assert_eq!(level(0.005), "99.5%");
        assert_eq!(p_value(0.00001), "<0.0001");
        assert_eq!(p_value(0.0312), "0.0312");
        assert_eq!(signed_points(-0.0125), "-1.25");
        assert_eq!(percent(0.1), "10.00%");
    }
}
