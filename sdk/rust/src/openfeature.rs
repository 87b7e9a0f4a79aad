//! An OpenFeature provider over [`Flags`], so code written against the `open-feature` crate
//! evaluates Rollgate flags without changing its call sites.
//!
//! | OpenFeature call | Rollgate answer |
//! |---|---|
//! | `get_bool_value(key)` | [`Flags::is_enabled`]; `variant` is the A/B arm, else `"on"`/`"off"` |
//! | `get_string_value(key)` | the user's variant; an error (so the caller's default applies) when the user has none |
//! | int, float, struct | `TYPE_MISMATCH`: Rollgate flags are booleans with optional string variants |
//!
//! The context's targeting key is the user id, and its custom fields are the attributes the
//! targeting rules test ([`context_of`]): strings, booleans, integers and floats (as numbers),
//! and lists of strings passed as `EvaluationContextFieldValue::new_struct(vec!["a".to_string()])`
//! (the crate has no list type); date-times and other structs are left out, so a rule on
//! them does not match.
//!
//! A key that is not in the document is `FLAG_NOT_FOUND`. Rollgate reasons map to OpenFeature
//! reasons: `disabled` → `DISABLED`, `targeting-match` and `allow-list` → `TARGETING_MATCH`,
//! `percent` → `SPLIT`, `full-rollout` and `shipped` → `STATIC`, `no-user` → `DEFAULT`. The
//! Rollgate reason, the rank, the rule that decided and the document generation are in the
//! flag metadata (`reason`, `rank`, `rule`, `generation`).

use open_feature::provider::{
    FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails,
};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode,
    EvaluationReason, EvaluationResult, FlagMetadata, StructValue, async_trait,
};

use crate::client::Flags;
use crate::context::{AttributeValue, Context};
use crate::eval::{Evaluation, Reason};

/// The provider name reported in OpenFeature metadata.
pub const PROVIDER_NAME: &str = "rollgate";

/// OpenFeature provider backed by a live [`Flags`]; reloads show up in the next evaluation.
#[derive(Clone, Debug)]
pub struct RollgateProvider {
    flags: Flags,
    metadata: ProviderMetadata,
}

impl RollgateProvider {
    pub fn new(flags: Flags) -> Self {
        Self {
            flags,
            metadata: ProviderMetadata::new(PROVIDER_NAME),
        }
    }

    pub fn flags(&self) -> &Flags {
        &self.flags
    }

    /// Evaluates through one snapshot and hands the borrowed answer, and whether the flag
    /// has variants at all, to `resolve`.
    fn resolve<T>(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
        resolve: impl FnOnce(&Evaluation<'_>, bool) -> EvaluationResult<(T, Option<String>)>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let snapshot = self.flags.snapshot();
        let evaluation = snapshot.evaluate_with(flag_key, &context_of(context));
        if evaluation.reason == Reason::Missing {
            return Err(error(
                EvaluationErrorCode::FlagNotFound,
                format!("no flag {flag_key:?} in {}", self.flags.origin()),
            ));
        }
        let has_variants = snapshot
            .flags()
            .get(flag_key)
            .is_some_and(|flag| flag.has_variants());
        let (value, variant) = resolve(&evaluation, has_variants)?;
        let mut metadata = FlagMetadata::default()
            .with_value("reason", evaluation.reason.as_str())
            .with_value(
                "generation",
                i64::try_from(snapshot.generation()).unwrap_or(i64::MAX),
            );
        if let Some(rank) = evaluation.rank {
            metadata = metadata.with_value("rank", rank);
        }
        if let Some(rule) = evaluation.rule {
            metadata = metadata.with_value("rule", rule);
        }
        Ok(ResolutionDetails {
            value,
            variant,
            reason: Some(openfeature_reason(evaluation.reason)),
            flag_metadata: Some(metadata),
        })
    }
}

/// The Rollgate context of an OpenFeature one: the targeting key, and each custom field of a
/// type rules can test (see the module docs).
pub fn context_of(context: &EvaluationContext) -> Context {
    let mut converted = Context::from(context.targeting_key.as_deref());
    converted.extend(context.custom_fields.iter().filter_map(|(name, value)| {
        let value = match value {
            EvaluationContextFieldValue::Bool(value) => AttributeValue::Bool(*value),
            EvaluationContextFieldValue::Int(value) => AttributeValue::from(*value),
            EvaluationContextFieldValue::Float(value) => AttributeValue::Number(*value),
            EvaluationContextFieldValue::String(value) => AttributeValue::String(value.clone()),
            EvaluationContextFieldValue::Struct(value) => {
                AttributeValue::List(value.downcast_ref::<Vec<String>>()?.clone())
            }
            EvaluationContextFieldValue::DateTime(_) => return None,
        };
        Some((name.as_str(), value))
    }));
    converted
}

/// The OpenFeature reason for a Rollgate reason.
pub fn openfeature_reason(reason: Reason) -> EvaluationReason {
    match reason {
        Reason::Disabled => EvaluationReason::Disabled,
        Reason::TargetingMatch | Reason::AllowList => EvaluationReason::TargetingMatch,
        Reason::Percent => EvaluationReason::Split,
        Reason::FullRollout | Reason::Shipped => EvaluationReason::Static,
        Reason::NoUser => EvaluationReason::Default,
        Reason::Missing => EvaluationReason::Error,
    }
}

fn error(code: EvaluationErrorCode, message: String) -> EvaluationError {
    EvaluationError {
        code,
        message: Some(message),
    }
}

fn type_mismatch(flag_key: &str, kind: &str) -> EvaluationError {
    error(
        EvaluationErrorCode::TypeMismatch,
        format!(
            "Rollgate flag {flag_key:?} is a boolean with optional string variants, not {kind}"
        ),
    )
}

#[async_trait]
impl FeatureProvider for RollgateProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    /// Always ready: a `Flags` exists only once a document has been accepted, and a failed
    /// reload keeps serving the last good one.
    fn status(&self) -> ProviderStatus {
        ProviderStatus::Ready
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(flag_key, context, |evaluation, _| {
            let variant = match (evaluation.variant, evaluation.enabled) {
                (Some(variant), _) => variant,
                (None, true) => "on",
                (None, false) => "off",
            };
            Ok((evaluation.enabled, Some(variant.to_owned())))
        })
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(
            flag_key,
            context,
            |evaluation, has_variants| match evaluation.variant {
                Some(variant) => Ok((variant.to_owned(), Some(variant.to_owned()))),
                None if !has_variants => Err(type_mismatch(flag_key, "a string")),
                None => Err(error(
                    EvaluationErrorCode::General("NO_VARIANT".into()),
                    format!(
                        "flag {flag_key:?} assigns no variant to this user ({}); use the default",
                        evaluation.reason
                    ),
                )),
            },
        )
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        Err(type_mismatch(flag_key, "an integer"))
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        Err(type_mismatch(flag_key, "a float"))
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        _context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        Err(type_mismatch(flag_key, "a struct"))
    }
}
