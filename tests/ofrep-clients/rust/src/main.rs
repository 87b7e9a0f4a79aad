//! Evaluates flags through OpenFeature's Rust SDK and the official OFREP provider, against a
//! Rollgate relay, and prints one JSON line per case.
//!
//!     rollgate-ofrep-rust-client BASE_URL CASES.json
//!
//! CASES.json: `[{"key": "...", "user": "..." | null, "type": "boolean" | "string",
//! "attributes": {"name": string | number | boolean}}]` (`attributes` optional). The provider
//! cannot send a list (it would send a struct's debug text), so a list attribute is refused.

use open_feature::{EvaluationContext, EvaluationContextFieldValue, OpenFeature};
use open_feature_ofrep::{OfrepOptions, OfrepProvider};
use serde_json::{Value, json};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, base_url, cases_file] = args.as_slice() else {
        eprintln!("usage: rollgate-ofrep-rust-client BASE_URL CASES.json");
        std::process::exit(2);
    };
    let cases: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(cases_file).unwrap_or_else(|e| panic!("{cases_file}: {e}")),
    )
    .unwrap_or_else(|e| panic!("{cases_file}: {e}"));
    let provider = OfrepProvider::new(OfrepOptions {
        base_url: base_url.clone(),
        ..OfrepOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("OFREP provider for {base_url}: {e}"));
    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(provider).await;
    let client = api.create_client();
    drop(api);
    for case in cases {
        let key = case["key"].as_str().expect("case key");
        let mut context = EvaluationContext::default();
        if let Some(user) = case["user"].as_str() {
            context = context.with_targeting_key(user);
        }
        if let Some(attributes) = case.get("attributes").and_then(Value::as_object) {
            for (name, value) in attributes {
                context = context.with_custom_field(name, field_value(key, name, value));
            }
        }
        let line = if case["type"] == "boolean" {
            match client.get_bool_details(key, Some(&context), None).await {
                Ok(d) => json!({"key": key, "user": case["user"], "value": d.value,
                    "variant": d.variant, "reason": d.reason.map(|r| r.to_string()), "errorCode": null}),
                Err(e) => json!({"key": key, "user": case["user"], "value": false, "variant": null,
                    "reason": "ERROR", "errorCode": e.code.to_string()}),
            }
        } else {
            match client.get_string_details(key, Some(&context), None).await {
                Ok(d) => json!({"key": key, "user": case["user"], "value": d.value,
                    "variant": d.variant, "reason": d.reason.map(|r| r.to_string()), "errorCode": null}),
                Err(e) => json!({"key": key, "user": case["user"], "value": "", "variant": null,
                    "reason": "ERROR", "errorCode": e.code.to_string()}),
            }
        };
        println!("{line}");
    }
}

/// An attribute as a context field: strings, booleans, integers and other numbers. Exits
/// naming the case for anything else, which this provider cannot send.
fn field_value(key: &str, name: &str, value: &Value) -> EvaluationContextFieldValue {
    if name == "targetingKey" {
        fail(key, name, "would replace the user");
    }
    match value {
        Value::String(text) => text.as_str().into(),
        Value::Bool(flag) => (*flag).into(),
        Value::Number(number) => match (number.as_i64(), number.as_f64()) {
            (Some(integer), _) => integer.into(),
            (None, Some(float)) => float.into(),
            (None, None) => fail(key, name, "is a number outside i64 and f64"),
        },
        _ => fail(key, name, "is not a string, number or boolean"),
    }
}

fn fail(key: &str, name: &str, why: &str) -> ! {
    eprintln!("case {key}: attribute {name:?} {why}");
    std::process::exit(2);
}
