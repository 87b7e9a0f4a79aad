//! The OpenFeature provider: call sites written against `open-feature` get Rollgate answers.
#![cfg(feature = "openfeature")]

use open_feature::provider::FeatureProvider;
use open_feature::{
    EvaluationContext, EvaluationErrorCode, EvaluationReason, FlagMetadataValue, OpenFeature,
};
use rollgate_sdk::openfeature::RollgateProvider;
use rollgate_sdk::{Flags, rollout_rank};

const DOC: &str = r#"{"schemaVersion":1,"flags":{
  "checkout":{"key":"checkout","enabled":true,"percent":100},
  "killed":{"key":"killed","enabled":false,"percent":100},
  "beta":{"key":"beta","enabled":true,"percent":0,"allowedUsers":["qa-1"]},
  "ramp":{"key":"ramp","enabled":true,"percent":50},
  "button":{"key":"button","enabled":true,"percent":100,
            "variants":[{"name":"blue","weight":50},{"name":"green","weight":50}]},
  "exp":{"key":"exp","enabled":true,"percent":100,
         "variants":[{"name":"a","weight":50},{"name":"b","weight":50}],
         "experiment":{"coverage":0,"salt":"s"}}}}"#;

fn provider() -> RollgateProvider {
    RollgateProvider::new(Flags::from_json(DOC.as_bytes()).unwrap())
}

fn user(id: &str) -> EvaluationContext {
    EvaluationContext::default().with_targeting_key(id)
}

#[tokio::test]
async fn booleans_map_reasons_and_use_the_targeting_key() {
    let provider = provider();
    assert_eq!(provider.metadata().name, "rollgate");
    let on = provider
        .resolve_bool_value("checkout", &user("u1"))
        .await
        .unwrap();
    assert!(on.value);
    assert_eq!(on.reason, Some(EvaluationReason::Static));
    assert_eq!(on.variant.as_deref(), Some("on"));

    let killed = provider
        .resolve_bool_value("killed", &user("u1"))
        .await
        .unwrap();
    assert!(!killed.value);
    assert_eq!(killed.reason, Some(EvaluationReason::Disabled));
    assert_eq!(killed.variant.as_deref(), Some("off"));

    let allowed = provider
        .resolve_bool_value("beta", &user("qa-1"))
        .await
        .unwrap();
    assert!(allowed.value);
    assert_eq!(allowed.reason, Some(EvaluationReason::TargetingMatch));

    let no_user = provider
        .resolve_bool_value("ramp", &EvaluationContext::default())
        .await
        .unwrap();
    assert!(!no_user.value);
    assert_eq!(no_user.reason, Some(EvaluationReason::Default));

    let split = provider
        .resolve_bool_value("ramp", &user("u-42"))
        .await
        .unwrap();
    assert_eq!(split.reason, Some(EvaluationReason::Split));
    assert_eq!(split.value, rollout_rank("ramp", "u-42") < 5_000);
    let metadata = split.flag_metadata.unwrap().values;
    assert_eq!(
        metadata["rank"],
        FlagMetadataValue::Int(i64::from(rollout_rank("ramp", "u-42")))
    );
    assert_eq!(metadata["reason"], FlagMetadataValue::from("percent"));
    assert_eq!(metadata["generation"], FlagMetadataValue::Int(1));
}

#[tokio::test]
async fn strings_are_variants_and_errors_leave_the_default_to_the_caller() {
    let provider = provider();
    let variant = provider
        .resolve_string_value("button", &user("u1"))
        .await
        .unwrap();
    assert!(["blue", "green"].contains(&variant.value.as_str()));
    assert_eq!(variant.variant.as_deref(), Some(variant.value.as_str()));
    let bool_variant = provider
        .resolve_bool_value("button", &user("u1"))
        .await
        .unwrap();
    assert_eq!(bool_variant.variant, variant.variant);

    // Outside the experiment's coverage: no variant, the caller's default applies.
    let outside = provider
        .resolve_string_value("exp", &user("u1"))
        .await
        .unwrap_err();
    assert_eq!(
        outside.code,
        EvaluationErrorCode::General("NO_VARIANT".into())
    );

    let plain = provider
        .resolve_string_value("checkout", &user("u1"))
        .await
        .unwrap_err();
    assert_eq!(plain.code, EvaluationErrorCode::TypeMismatch);
    let int = provider
        .resolve_int_value("checkout", &user("u1"))
        .await
        .unwrap_err();
    assert_eq!(int.code, EvaluationErrorCode::TypeMismatch);

    let missing = provider
        .resolve_bool_value("nope", &user("u1"))
        .await
        .unwrap_err();
    assert_eq!(missing.code, EvaluationErrorCode::FlagNotFound);
}

/// The adoption path: unchanged OpenFeature call sites, Rollgate behind them.
#[tokio::test]
async fn openfeature_client_call_sites_work_unchanged() {
    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(provider()).await;
    let client = api.create_client();
    drop(api);

    let context = user("qa-1");
    assert!(
        client
            .get_bool_value("beta", Some(&context), None)
            .await
            .unwrap()
    );
    assert!(
        !client
            .get_bool_value("beta", Some(&user("someone")), None)
            .await
            .unwrap()
    );
    let fallback = client
        .get_bool_value("nope", Some(&context), None)
        .await
        .unwrap_or(false);
    assert!(!fallback);
    let details = client
        .get_bool_details("killed", Some(&context), None)
        .await
        .unwrap();
    assert_eq!(details.reason, Some(EvaluationReason::Disabled));
}
