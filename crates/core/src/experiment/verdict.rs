//! The pure evaluation: counts, configuration, stored state and elapsed time in; per-variant
//! statistics, the sample-ratio check, a decision and the next state out.

use super::inputs::{ExperimentConfig, ExperimentError, Method, VariantCounts, validate_counts};
use super::msprt::{SequentialArmState, mixture_look};
use super::srm::{SrmResult, sample_ratio_test};
use super::stats::{Interval, holm, rate, two_proportion_z_test};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What the caller keeps in `status` between looks and passes back unchanged.
///
/// * `arms`: for `sequential`, the running always-valid p-value and confidence sequence of
///   each treatment. Losing them restarts the running minimum and intersection; that stays
///   valid but throws away evidence, and the reported p-value can go up.
/// * `conclusion`: the first final decision and the statistics it was made on. Once set it
///   is returned unchanged at every later look (only a sample-ratio mismatch can replace it),
///   so a `fixed` analysis is never redone on more data and a winner never flips.
///
/// To restart an experiment (new variants, a new salt), reset this to the default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentState {
    /// Number of looks that were analysed (after the minimum samples were met).
    #[serde(default)]
    pub looks: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arms: Vec<SequentialArmState>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<Conclusion>,
}

/// Statistics for one variant. Lifts compare the variant with the control (the first variant)
/// and are absent on the control itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VariantStats {
    /// The variant's name, as in `spec.experiment.variants`.
    pub name: String,
    /// The variant's weight in percent, as in `spec.experiment.variants`.
    pub weight: u32,
    /// Users exposed to this variant since the experiment started (`metric.exposures`,
    /// rounded to a whole number).
    pub exposures: u64,
    /// Exposed users of this variant who converted since the experiment started
    /// (`metric.conversions`, rounded to a whole number).
    pub conversions: u64,
    /// Conversions over exposures (0 without exposures).
    pub rate: f64,
    /// Absolute lift, `rate − control rate` (a difference of proportions: 0.02 is +2 points).
    /// This is the quantity the tests are about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lift: Option<f64>,
    /// `lift` divided by the control's rate; absent when that rate is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_lift: Option<f64>,
    /// Interval for the absolute lift at level 1 − α (not multiplicity-adjusted): the running
    /// always-valid confidence sequence for `sequential`, the unpooled Wald interval for
    /// `fixed`. Absent until the method's analysis has run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// `interval / control rate`: approximate, it treats the control rate as known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_interval: Option<Interval>,
    /// Unadjusted p-value against the control: the running always-valid p-value for
    /// `sequential`, the pooled two-proportion z-test for `fixed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
    /// Holm-adjusted p-value across all treatment-vs-control comparisons (equal to `pValue`
    /// with a single treatment). Significance is `adjustedPValue ≤ α`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adjusted_p_value: Option<f64>,
    /// Whether `adjustedPValue` is at most α (`spec.experiment.alpha`); always false on the
    /// control.
    #[serde(default)]
    pub significant: bool,
}

/// The variant to ship.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Winner {
    /// The winning variant's name: a treatment, or the control when every treatment is
    /// significantly worse.
    pub variant: String,
    /// True when the control won: every treatment is significantly worse. Shipping the
    /// control means turning the experiment off.
    pub control: bool,
    /// The variant it was compared with: the control for a treatment win, the best treatment
    /// (highest rate) for a control win.
    pub compared_to: String,
    /// Absolute lift of `variant` over `comparedTo` (positive).
    pub lift: f64,
    /// Interval for `lift` at level 1 − α (not multiplicity-adjusted).
    pub interval: Interval,
    /// `lift` divided by the rate of `comparedTo`; absent when that rate is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_lift: Option<f64>,
    /// `interval` divided by the rate of `comparedTo` (approximate); absent when that rate is 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relative_interval: Option<Interval>,
    /// The Holm-adjusted p-value the decision rests on (for a control win, the largest one).
    pub p_value: f64,
}

/// What the experiment should do now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "phase", rename_all_fields = "camelCase")]
pub enum Decision {
    /// Some variant has fewer than `required` exposures; nothing is analysed yet.
    Collecting { min_exposures: u64, required: u64 },
    /// Analysed, nothing significant yet (or, for `fixed`, the planned size is not reached).
    Running,
    /// Significant: ship this variant (when guardrails also pass and `autoShip` is set).
    Winner(Winner),
    /// `fixed` only: the planned analysis ran and found no significant difference.
    NoDifference,
    /// `maxDuration` passed without a winner.
    Inconclusive,
    /// Exposures do not match the weights (χ² p < 0.001): halt, never ship.
    SampleRatioMismatch { statistic: f64, p_value: f64 },
}

impl Decision {
    /// Whether the experiment is over (the decision is latched in the state).
    pub fn is_final(&self) -> bool {
        !matches!(self, Decision::Collecting { .. } | Decision::Running)
    }

    /// The decision's name, for condition reasons and events.
    pub fn reason(&self) -> &'static str {
        match self {
            Decision::Collecting { .. } => "Collecting",
            Decision::Running => "Running",
            Decision::Winner(_) => "Winner",
            Decision::NoDifference => "NoDifference",
            Decision::Inconclusive => "Inconclusive",
            Decision::SampleRatioMismatch { .. } => "SampleRatioMismatch",
        }
    }
}

/// A final decision and the statistics it was made on, frozen in the state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Conclusion {
    pub decision: Decision,
    pub variants: Vec<VariantStats>,
}

/// The result of one look.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExperimentVerdict {
    pub decision: Decision,
    /// One entry per variant, control first. Frozen once the decision is final.
    pub variants: Vec<VariantStats>,
    /// The sample-ratio check on the current counts (recomputed at every look, even after
    /// a conclusion).
    pub srm: SrmResult,
    /// Store in `status`; pass back at the next look.
    pub state: ExperimentState,
}

/// Evaluates one look at an experiment.
///
/// `counts` lists every variant, control first, with cumulative counts since the start;
/// `previous` is the state returned by the previous look (`ExperimentState::default()` at the
/// first); `elapsed` is the time since the experiment started. In order:
///
/// 1. a sample-ratio mismatch halts the experiment (and replaces any earlier conclusion);
/// 2. an earlier conclusion is returned unchanged;
/// 3. until every variant has `min_samples_per_variant` exposures: `Collecting`;
/// 4. `sequential`: fold this look into each treatment's running always-valid p-value and
///    confidence sequence, Holm-adjust the p-values, pick a winner;
///    `fixed`: before `planned_samples_per_variant` per variant `Running`, at it one z-test
///    per treatment, Holm, then a winner or `NoDifference`;
/// 5. no winner and `elapsed ≥ max_duration`: `Inconclusive`.
pub fn evaluate_experiment(
    config: &ExperimentConfig,
    counts: &[VariantCounts],
    previous: &ExperimentState,
    elapsed: Duration,
) -> Result<ExperimentVerdict, ExperimentError> {
    config.validate()?;
    validate_counts(counts)?;

    let exposures: Vec<u64> = counts.iter().map(|c| c.exposures).collect();
    let weights: Vec<u32> = counts.iter().map(|c| c.weight).collect();
    let srm = sample_ratio_test(&exposures, &weights);
    let mismatch = Decision::SampleRatioMismatch {
        statistic: srm.statistic,
        p_value: srm.p_value,
    };

    if let Some(conclusion) = &previous.conclusion {
        let mut state = previous.clone();
        let decision = match &conclusion.decision {
            Decision::SampleRatioMismatch { .. } => conclusion.decision.clone(),
            _ if srm.mismatch => mismatch,
            other => other.clone(),
        };
        state.conclusion = Some(Conclusion {
            decision: decision.clone(),
            variants: conclusion.variants.clone(),
        });
        return Ok(ExperimentVerdict {
            decision,
            variants: conclusion.variants.clone(),
            srm,
            state,
        });
    }

    let descriptive = describe(counts);
    let timed_out = config.max_duration.is_some_and(|max| elapsed >= max);
    let min_exposures = exposures.iter().copied().min().unwrap_or(0);

    if srm.mismatch {
        return Ok(conclude(mismatch, descriptive, srm, previous.clone()));
    }
    if min_exposures < config.min_samples_per_variant {
        if timed_out {
            return Ok(conclude(
                Decision::Inconclusive,
                descriptive,
                srm,
                previous.clone(),
            ));
        }
        let decision = Decision::Collecting {
            min_exposures,
            required: config.min_samples_per_variant,
        };
        return Ok(ExperimentVerdict {
            decision,
            variants: descriptive,
            srm,
            state: previous.clone(),
        });
    }

    let mut state = previous.clone();
    let variants = match config.method {
        Method::Sequential => sequential(config, counts, descriptive, &mut state),
        Method::Fixed => {
            let planned = config
                .planned_samples_per_variant
                .unwrap_or(0)
                .max(config.min_samples_per_variant);
            if min_exposures < planned {
                if timed_out {
                    return Ok(conclude(Decision::Inconclusive, descriptive, srm, state));
                }
                return Ok(ExperimentVerdict {
                    decision: Decision::Running,
                    variants: descriptive,
                    srm,
                    state,
                });
            }
            fixed(config, counts, descriptive)
        }
    };
    state.looks = state.looks.saturating_add(1);

    let decision = match pick_winner(&variants, config.alpha) {
        Some(winner) => Decision::Winner(winner),
        None if config.method == Method::Fixed => Decision::NoDifference,
        None if timed_out => Decision::Inconclusive,
        None => Decision::Running,
    };
    if decision.is_final() {
        Ok(conclude(decision, variants, srm, state))
    } else {
        Ok(ExperimentVerdict {
            decision,
            variants,
            srm,
            state,
        })
    }
}

fn conclude(
    decision: Decision,
    variants: Vec<VariantStats>,
    srm: SrmResult,
    mut state: ExperimentState,
) -> ExperimentVerdict {
    state.conclusion = Some(Conclusion {
        decision: decision.clone(),
        variants: variants.clone(),
    });
    ExperimentVerdict {
        decision,
        variants,
        srm,
        state,
    }
}

/// Counts, rates and point estimates of the lifts; no tests.
fn describe(counts: &[VariantCounts]) -> Vec<VariantStats> {
    let control_rate = counts
        .first()
        .map_or(0.0, |c| rate(c.conversions, c.exposures));
    counts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let variant_rate = rate(c.conversions, c.exposures);
            let lift = (i > 0).then_some(variant_rate - control_rate);
            VariantStats {
                name: c.name.clone(),
                weight: c.weight,
                exposures: c.exposures,
                conversions: c.conversions,
                rate: variant_rate,
                lift,
                relative_lift: lift
                    .filter(|_| control_rate > 0.0)
                    .map(|l| l / control_rate),
                interval: None,
                relative_interval: None,
                p_value: None,
                adjusted_p_value: None,
                significant: false,
            }
        })
        .collect()
}

/// Fills in the p-values and intervals of the treatments (`variants[1..]`) from one
/// (interval, raw p-value) per treatment, with Holm across them.
fn fill_tests(variants: &mut [VariantStats], tests: &[(Interval, f64)], alpha: f64) {
    let control_rate = variants.first().map_or(0.0, |v| v.rate);
    let raw: Vec<f64> = tests.iter().map(|(_, p)| *p).collect();
    let adjusted = holm(&raw);
    for ((variant, (interval, p)), adjusted) in variants.iter_mut().skip(1).zip(tests).zip(adjusted)
    {
        variant.interval = Some(*interval);
        variant.relative_interval = interval.scaled(control_rate);
        variant.p_value = Some(*p);
        variant.adjusted_p_value = Some(adjusted);
        variant.significant = adjusted <= alpha;
    }
}

/// One mSPRT look per treatment, folded into the running state in `state.arms`.
fn sequential(
    config: &ExperimentConfig,
    counts: &[VariantCounts],
    mut variants: Vec<VariantStats>,
    state: &mut ExperimentState,
) -> Vec<VariantStats> {
    let Some((control, treatments)) = counts.split_first() else {
        return variants;
    };
    let arms: Vec<SequentialArmState> = treatments
        .iter()
        .map(|treatment| {
            let look = mixture_look(
                control.conversions,
                control.exposures,
                treatment.conversions,
                treatment.exposures,
                config.alpha,
                config.mixture_relative_lift,
            );
            state
                .arms
                .iter()
                .find(|arm| arm.name == treatment.name)
                .cloned()
                .unwrap_or_else(|| SequentialArmState::new(treatment.name.clone()))
                .update(&look)
        })
        .collect();
    let tests: Vec<(Interval, f64)> = arms.iter().map(|arm| (arm.interval, arm.p_value)).collect();
    fill_tests(&mut variants, &tests, config.alpha);
    state.arms = arms;
    variants
}

/// One two-proportion z-test per treatment at the planned sample size.
fn fixed(
    config: &ExperimentConfig,
    counts: &[VariantCounts],
    mut variants: Vec<VariantStats>,
) -> Vec<VariantStats> {
    let Some((control, treatments)) = counts.split_first() else {
        return variants;
    };
    let tests: Vec<(Interval, f64)> = treatments
        .iter()
        .map(|treatment| {
            let test = two_proportion_z_test(
                control.conversions,
                control.exposures,
                treatment.conversions,
                treatment.exposures,
                config.alpha,
            );
            (test.interval, test.p_value)
        })
        .collect();
    fill_tests(&mut variants, &tests, config.alpha);
    variants
}

/// The best treatment with a significant improvement over the control; or the control when
/// every treatment is significantly worse; or nobody.
///
/// A treatment counts as better (worse) when its Holm-adjusted p-value is ≤ α *and* its
/// interval lies entirely above (below) 0. For `sequential` the second condition follows
/// from the first (the p-value and the confidence sequence are dual); for `fixed` it guards
/// the rare borderline case where the pooled test and the unpooled interval disagree.
fn pick_winner(variants: &[VariantStats], alpha: f64) -> Option<Winner> {
    let (control, treatments) = variants.split_first()?;
    let direction = |v: &VariantStats| -> Option<std::cmp::Ordering> {
        let adjusted = v.adjusted_p_value?;
        let interval = v.interval?;
        if adjusted > alpha {
            None
        } else if interval.lower > 0.0 {
            Some(std::cmp::Ordering::Greater)
        } else if interval.upper < 0.0 {
            Some(std::cmp::Ordering::Less)
        } else {
            None
        }
    };
    let by_rate = |a: &&VariantStats, b: &&VariantStats| a.rate.total_cmp(&b.rate);

    let best_better = treatments
        .iter()
        .filter(|v| direction(v) == Some(std::cmp::Ordering::Greater))
        .max_by(by_rate);
    if let Some(best) = best_better {
        let interval = best.interval?;
        return Some(Winner {
            variant: best.name.clone(),
            control: false,
            compared_to: control.name.clone(),
            lift: best.rate - control.rate,
            interval,
            relative_lift: (control.rate > 0.0).then(|| (best.rate - control.rate) / control.rate),
            relative_interval: interval.scaled(control.rate),
            p_value: best.adjusted_p_value?,
        });
    }

    let all_worse = treatments
        .iter()
        .all(|v| direction(v) == Some(std::cmp::Ordering::Less));
    if !all_worse {
        return None;
    }
    let best = treatments.iter().max_by(by_rate)?;
    let best_interval = best.interval?;
    let interval = Interval {
        lower: -best_interval.upper,
        upper: -best_interval.lower,
    };
    let p_value = treatments
        .iter()
        .filter_map(|v| v.adjusted_p_value)
        .fold(0.0, f64::max);
    Some(Winner {
        variant: control.name.clone(),
        control: true,
        compared_to: best.name.clone(),
        lift: control.rate - best.rate,
        interval,
        relative_lift: (best.rate > 0.0).then(|| (control.rate - best.rate) / best.rate),
        relative_interval: interval.scaled(best.rate),
        p_value,
    })
}
