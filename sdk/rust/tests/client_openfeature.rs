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

/// A flag off for everyone but the users its rules target, one rule per context type.
const TARGETED: &str = r#"{"schemaVersion":2,"flags":{"new-app":{"key":"new-app","enabled":true,"percent":0,
  "variants":[{"name":"blue","weight":50},{"name":"green","weight":50}],
  "targeting":[
    {"name":"enterprise","conditions":[{"attribute":"plan","operator":"In","values":["enterprise"]}],
     "serve":{"variant":"green"}},
    {"name":"adults-on-new-app","conditions":[
       {"attribute":"age","operator":"Gte","values":["18"]},
       {"attribute":"appVersion","operator":"SemverGte","values":["4.2"]}],
     "serve":{"enabled":true}},
    {"name":"precise","conditions":[{"attribute":"score","operator":"Gt","values":["0.5"]}],
     "serve":{"enabled":true}},
    {"name":"staff","conditions":[{"attribute":"verified","operator":"In","values":["true"]},
                                  {"attribute":"groups","operator":"In","values":["staff"]}],
     "serve":{"percent":100}},
    {"name":"half-of-beta","conditions":[{"attribute":"beta","operator":"Exists","values":[]}],
     "serve":{"percent":50}},
    {"name":"by-date","conditions":[{"attribute":"signup","operator":"Exists","values":[]}],
     "serve":{"enabled":true}}]}}}"#;

#[tokio::test]
async fn context_fields_feed_the_rules_and_the_rule_is_reported() {
    use open_feature::EvaluationContextFieldValue;

    let provider = RollgateProvider::new(Flags::from_json(TARGETED.as_bytes()).unwrap());
    let resolve = |context: EvaluationContext| {
        let provider = provider.clone();
        async move {
            provider
                .resolve_bool_value("new-app", &context)
                .await
                .unwrap()
        }
    };
    let rule_of = |details: &open_feature::provider::ResolutionDetails<bool>| {
        details
            .flag_metadata
            .as_ref()
            .unwrap()
            .values
            .get("rule")
            .cloned()
    };

    let enterprise = resolve(user("u1").with_custom_field("plan", "enterprise")).await;
    assert!(enterprise.value);
    assert_eq!(enterprise.reason, Some(EvaluationReason::TargetingMatch));
    assert_eq!(enterprise.variant.as_deref(), Some("green"));
    assert_eq!(
        rule_of(&enterprise),
        Some(FlagMetadataValue::from("enterprise"))
    );
    let metadata = enterprise.flag_metadata.unwrap().values;
    assert_eq!(
        metadata["reason"],
        FlagMetadataValue::from("targeting-match")
    );

    // Integers and floats are numbers; strings are versions for the Semver operators.
    let adult = resolve(
        user("u1")
            .with_custom_field("age", 30)
            .with_custom_field("appVersion", "4.10.0"),
    )
    .await;
    assert_eq!(
        rule_of(&adult),
        Some(FlagMetadataValue::from("adults-on-new-app"))
    );
    let older_app = resolve(
        user("u1")
            .with_custom_field("age", 30)
            .with_custom_field("appVersion", "4.1.9"),
    )
    .await;
    assert!(!older_app.value);
    assert_eq!(older_app.reason, Some(EvaluationReason::Split));
    assert_eq!(rule_of(&older_app), None);
    let precise = resolve(user("u1").with_custom_field("score", 0.75)).await;
    assert_eq!(rule_of(&precise), Some(FlagMetadataValue::from("precise")));

    // Booleans, and a list of strings passed as a struct.
    let staff = resolve(
        EvaluationContext::default()
            .with_custom_field("verified", true)
            .with_custom_field(
                "groups",
                EvaluationContextFieldValue::new_struct(vec!["staff".to_owned()]),
            ),
    )
    .await;
    assert!(staff.value);
    assert_eq!(rule_of(&staff), Some(FlagMetadataValue::from("staff")));

    // A rule percent below 100 without a targeting key: off, the rule still named.
    let anonymous_beta =
        resolve(EvaluationContext::default().with_custom_field("beta", true)).await;
    assert!(!anonymous_beta.value);
    assert_eq!(anonymous_beta.reason, Some(EvaluationReason::Default));
    assert_eq!(
        rule_of(&anonymous_beta),
        Some(FlagMetadataValue::from("half-of-beta"))
    );
    let keyed_beta = resolve(user("u-7").with_custom_field("beta", "yes")).await;
    assert_eq!(keyed_beta.value, rollout_rank("new-app", "u-7") < 5_000);
    assert_eq!(
        keyed_beta.flag_metadata.unwrap().values["rank"],
        FlagMetadataValue::Int(i64::from(rollout_rank("new-app", "u-7")))
    );

    // Date-times and other structs are not attributes: no rule sees them.
    let dated = resolve(
        user("u1")
            .with_custom_field(
                "signup",
                EvaluationContextFieldValue::DateTime(time::OffsetDateTime::UNIX_EPOCH),
            )
            .with_custom_field("groups", EvaluationContextFieldValue::new_struct(42u8)),
    )
    .await;
    assert_eq!(dated.reason, Some(EvaluationReason::Split));
    assert_eq!(rule_of(&dated), None);
}
