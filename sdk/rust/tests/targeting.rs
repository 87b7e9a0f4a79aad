//! Targeting rules and segments against `docs/targeting.md`: the evaluation order, every
//! operator, the missing-attribute rule, versions, segments, rule percents, and the document
//! check's errors.

use rollgate_sdk::{
    CompiledFlag, Context, DocumentError, Evaluation, FlagDocument, FlagSet, Reason,
    percent_threshold, rollout_rank,
};
use serde_json::{Value, json};

/// A schemaVersion 2 document with `flag` under its key and `segments`.
fn document(flag: Value, segments: Value) -> FlagDocument {
    let key = flag["key"].as_str().unwrap().to_owned();
    let json = json!({"schemaVersion": 2, "flags": {key: flag}, "segments": segments});
    FlagDocument::from_json(json.to_string().as_bytes())
        .unwrap_or_else(|error| panic!("{error}\n{json:#}"))
}

/// A flag at `percent` with `targeting`.
fn flag(percent: f64, targeting: Value) -> Value {
    json!({"key": "f", "enabled": true, "percent": percent, "targeting": targeting})
}

/// One rule `r` serving on, with one condition.
fn one_condition(condition: Value) -> FlagSet {
    FlagSet::from_document(&document(
        flag(
            0.0,
            json!([{"name": "r", "conditions": [condition], "serve": {"enabled": true}}]),
        ),
        json!({}),
    ))
}

/// Whether `condition` holds for `context` (the rule turns a 0% flag on).
fn holds(condition: &Value, context: &Context) -> bool {
    let set = one_condition(condition.clone());
    let answer = set.evaluate_with("f", context);
    assert_eq!(
        answer.reason == Reason::TargetingMatch,
        answer.enabled,
        "{answer:?}"
    );
    answer.enabled
}

fn condition(attribute: &str, operator: &str, values: &[&str]) -> Value {
    json!({"attribute": attribute, "operator": operator, "values": values})
}

#[test]
fn in_and_not_in_read_each_attribute_type() {
    let user = Context::new("u")
        .with("country", "DE")
        .with("groups", ["staff", "admins"])
        .with("empty", Vec::<String>::new())
        .with("age", 42)
        .with("beta", true)
        .with("text-true", "true");
    let cases: &[(&str, &[&str], bool)] = &[
        ("country", &["FR", "DE"], true),
        ("country", &["de"], false),
        ("groups", &["admins"], true),
        ("groups", &["guests"], false),
        ("empty", &["x"], false),
        ("age", &["42"], true),
        ("age", &["42.0", "x"], true),
        ("age", &["4.2e1"], true),
        ("age", &["41"], false),
        ("age", &["+42"], false),
        ("beta", &["true"], true),
        ("beta", &["false", "1"], false),
        ("beta", &["True"], false),
        ("text-true", &["true"], true),
    ];
    for (attribute, values, expected) in cases {
        let when_in = condition(attribute, "In", values);
        assert_eq!(
            holds(&when_in, &user),
            *expected,
            "{attribute} In {values:?}"
        );
        let not_in = condition(attribute, "NotIn", values);
        assert_eq!(
            holds(&not_in, &user),
            !expected,
            "{attribute} NotIn {values:?}"
        );
    }
    // A number never equals a boolean, and a boolean never a number.
    let numbers = Context::new("u").with("n", 1);
    assert!(!holds(&condition("n", "In", &["true"]), &numbers));
    let flags = Context::new("u").with("b", true);
    assert!(!holds(&condition("b", "In", &["1"]), &flags));
}

#[test]
fn a_missing_attribute_makes_every_operator_false() {
    let nobody = Context::new("u").with("other", "x");
    for (operator, values) in [
        ("In", vec!["x"]),
        ("NotIn", vec!["x"]),
        ("StartsWith", vec!["x"]),
        ("EndsWith", vec!["x"]),
        ("Contains", vec!["x"]),
        ("Lt", vec!["1"]),
        ("Lte", vec!["1"]),
        ("Gt", vec!["1"]),
        ("Gte", vec!["1"]),
        ("SemverLt", vec!["1.0"]),
        ("SemverGte", vec!["1.0"]),
        ("SemverEq", vec!["1.0"]),
        ("Exists", vec![]),
    ] {
        let condition = condition("missing", operator, &values);
        assert!(!holds(&condition, &nobody), "{operator}");
        assert!(!holds(&condition, &Context::anonymous()), "{operator}");
    }
}

#[test]
fn string_operators_are_byte_for_byte_and_any_element_of_a_list() {
    let user = Context::new("u")
        .with("email", "Ann@Example.com")
        .with("tags", ["alpha", "beta-2"])
        .with("age", 30);
    let cases: &[(&str, &str, &[&str], bool)] = &[
        ("email", "EndsWith", &["@Example.com"], true),
        ("email", "EndsWith", &["@example.com"], false),
        ("email", "StartsWith", &["x", "Ann"], true),
        ("email", "Contains", &["@Ex"], true),
        ("tags", "StartsWith", &["bet"], true),
        ("tags", "EndsWith", &["-3"], false),
        ("tags", "Contains", &["pha"], true),
        ("age", "StartsWith", &["3"], false),
    ];
    for (attribute, operator, values, expected) in cases {
        let condition = condition(attribute, operator, values);
        assert_eq!(holds(&condition, &user), *expected, "{condition}");
    }
}

#[test]
fn number_operators_take_numbers_only() {
    let user = Context::new("u")
        .with("age", 18)
        .with("score", 2.5)
        .with("text", "18");
    let cases: &[(&str, &str, &str, bool)] = &[
        ("age", "Lt", "18", false),
        ("age", "Lte", "18", true),
        ("age", "Gt", "17.99", true),
        ("age", "Gte", "1.8e1", true),
        ("score", "Lt", "-1", false),
        ("score", "Gt", "-2.5E0", true),
        ("text", "Gte", "0", false),
    ];
    for (attribute, operator, value, expected) in cases {
        let condition = condition(attribute, operator, &[value]);
        assert_eq!(holds(&condition, &user), *expected, "{condition}");
    }
    let not_a_number = Context::new("u").with("age", f64::NAN);
    assert!(!holds(&condition("age", "Lt", &["1"]), &not_a_number));
    assert!(!holds(&condition("age", "Gte", &["1"]), &not_a_number));
}

#[test]
fn version_operators_compare_by_semver_precedence() {
    let cases: &[(&str, &str, &str, bool)] = &[
        ("4.2.0", "SemverGte", "4.2", true),
        ("4.2.0-rc.1", "SemverGte", "4.2", false),
        ("4.2.0-rc.1", "SemverLt", "4.2.0", true),
        ("4.10", "SemverGte", "4.9.9", true),
        ("4.2.0+abc", "SemverEq", "4.2", true),
        ("4", "SemverEq", "4.0.0", true),
        ("1.0.0-alpha.1", "SemverLt", "1.0.0-alpha.beta", true),
        ("1.0.0-beta.11", "SemverLt", "1.0.0-beta.2", false),
        ("v4.2.0", "SemverGte", "1", false),
        ("04.2.0", "SemverGte", "1", false),
        ("4.2.0.1", "SemverLt", "9", false),
    ];
    for (version, operator, value, expected) in cases {
        let user = Context::new("u").with("app", *version);
        let condition = condition("app", operator, &[value]);
        assert_eq!(
            holds(&condition, &user),
            *expected,
            "{version} {operator} {value}"
        );
    }
    let numeric = Context::new("u").with("app", 4);
    assert!(!holds(&condition("app", "SemverGte", &["1"]), &numeric));
}

#[test]
fn exists_and_the_targeting_key_attribute() {
    let user = Context::new("internal-7")
        .with("flag", false)
        .with("targetingKey", "someone-else");
    assert!(holds(&condition("flag", "Exists", &[]), &user));
    let internal = condition("targetingKey", "StartsWith", &["internal-"]);
    assert!(holds(&internal, &user), "the user id, not the attribute");
    assert!(!holds(
        &internal,
        &Context::anonymous().with("targetingKey", "internal-1")
    ));
    assert!(holds(&condition("targetingKey", "Exists", &[]), &user));
    assert!(!holds(
        &condition("targetingKey", "Exists", &[]),
        &Context::anonymous()
    ));
    // The calls without a context see the user id as `targetingKey`, and nothing else.
    let set = one_condition(internal);
    assert!(set.is_enabled("f", Some("internal-7")));
    assert!(!set.is_enabled("f", Some("external")));
    let set = one_condition(condition("flag", "Exists", &[]));
    assert!(!set.is_enabled("f", Some("internal-7")));
}

/// Segments `beta` and `staff`, and a flag `f` at 0% with a rule on each.
fn segment_document() -> FlagDocument {
    document(
        flag(
            0.0,
            json!([
                {"name": "beta-users", "conditions": [{"operator": "InSegment", "values": ["gone", "beta"]}],
                 "serve": {"enabled": true}},
                {"name": "missing-segment", "conditions": [{"operator": "InSegment", "values": ["gone"]}],
                 "serve": {"variant": "x"}}
            ]),
        )
        .as_object()
        .map(|flag| {
            let mut flag = flag.clone();
            flag.insert(
                "variants".into(),
                json!([{"name": "x", "weight": 50}, {"name": "y", "weight": 50}]),
            );
            Value::Object(flag)
        })
        .unwrap(),
        json!({"beta": {
            "included": ["alice", "mallory"],
            "excluded": ["mallory", "eve"],
            "rules": [{"conditions": [
                {"attribute": "email", "operator": "EndsWith", "values": ["@example.com"]},
                {"attribute": "verified", "operator": "In", "values": ["true"]}
            ]}]
        }}),
    )
}

#[test]
fn segments_exclude_then_include_then_match_rules() {
    let set = FlagSet::from_document(&segment_document());
    let in_segment = |context: &Context| {
        let answer = set.evaluate_with("f", context);
        assert_ne!(answer.rule, Some("missing-segment"), "{answer:?}");
        answer.rule == Some("beta-users")
    };
    let employee = |id: &str| {
        Context::new(id)
            .with("email", "x@example.com")
            .with("verified", true)
    };
    assert!(in_segment(&Context::new("alice")));
    assert!(!in_segment(&Context::new("mallory")), "excluded wins");
    assert!(!in_segment(&employee("eve")), "excluded wins over rules");
    assert!(in_segment(&employee("bob")));
    assert!(!in_segment(
        &Context::new("bob").with("email", "x@example.com")
    ));
    assert!(
        in_segment(
            &Context::anonymous()
                .with("email", "x@example.com")
                .with("verified", true)
        ),
        "without a key only the rules match"
    );
    assert!(!in_segment(&Context::anonymous()));
    // A flag compiled alone has no segments: InSegment holds for no one.
    let document = segment_document();
    let alone = CompiledFlag::new(&document.flags["f"]);
    assert_eq!(alone.evaluate(Some("alice")).reason, Reason::Percent);
    let with_segments = CompiledFlag::with_segments(&document.flags["f"], &document.segments);
    assert_eq!(
        with_segments.evaluate(Some("alice")).rule,
        Some("beta-users")
    );
    assert_eq!(set.get("f"), Some(&with_segments));
}

#[test]
fn the_kill_switch_comes_before_rules_and_rules_before_everything_else() {
    let rules = json!([
        {"name": "off-in-de", "conditions": [{"attribute": "country", "operator": "In", "values": ["DE"]}],
         "serve": {"enabled": false}},
        {"name": "blue", "conditions": [{"attribute": "plan", "operator": "In", "values": ["pro"]}],
         "serve": {"variant": "blue"}},
        {"name": "on", "conditions": [{"attribute": "plan", "operator": "Exists", "values": []}],
         "serve": {"enabled": true}}
    ]);
    let mut entry = flag(100.0, rules);
    entry["allowedUsers"] = json!(["vip"]);
    entry["variants"] = json!([{"name": "blue", "weight": 50}, {"name": "green", "weight": 50}]);
    let set = FlagSet::from_document(&document(entry.clone(), json!({})));
    let vip_in_de = Context::new("vip").with("country", "DE");
    let answer = set.evaluate_with("f", &vip_in_de);
    assert_eq!(
        (answer.enabled, answer.reason, answer.rule),
        (false, Reason::TargetingMatch, Some("off-in-de"))
    );
    let pro = Context::anonymous().with("plan", "pro");
    assert_eq!(
        set.evaluate_with("f", &pro),
        Evaluation {
            enabled: true,
            variant: Some("blue"),
            reason: Reason::TargetingMatch,
            rank: None,
            rule: Some("blue"),
        }
    );
    // Not matched: the fallthrough.
    assert_eq!(
        set.evaluate_with("f", &Context::new("vip")).reason,
        Reason::AllowList
    );
    assert_eq!(
        set.evaluate_with("f", &Context::new("u")).reason,
        Reason::FullRollout
    );

    // A shipped winner is what every "on" gets, a rule's included; a rule's variant and
    // "off" still win.
    entry["shippedVariant"] = json!("green");
    let shipped = FlagSet::from_document(&document(entry.clone(), json!({})));
    let free = Context::new("u").with("plan", "free");
    let answer = shipped.evaluate_with("f", &free);
    assert_eq!((answer.variant, answer.rule), (Some("green"), Some("on")));
    assert_eq!(shipped.variant_with("f", &pro), Some("blue"));
    assert!(!shipped.is_enabled_with("f", &vip_in_de));
    assert_eq!(shipped.evaluate("f", Some("u")).reason, Reason::Shipped);

    entry["enabled"] = json!(false);
    let killed = FlagSet::from_document(&document(entry, json!({})));
    for context in [&vip_in_de, &pro, &free] {
        assert_eq!(killed.evaluate_with("f", context).reason, Reason::Disabled);
        assert_eq!(killed.evaluate_with("f", context).rule, None);
    }
}

#[test]
fn a_rule_percent_uses_the_flag_rank_and_needs_a_user_below_100() {
    let rule = |percent: f64| {
        json!([{"name": "half", "conditions": [{"attribute": "plan", "operator": "In", "values": ["pro"]}],
                "serve": {"percent": percent}}])
    };
    let mut entry = flag(0.0, rule(37.5));
    entry["variants"] = json!([{"name": "a", "weight": 30}, {"name": "b", "weight": 70}]);
    let set = FlagSet::from_document(&document(entry.clone(), json!({})));
    let plain_entry = json!({"key": "f", "enabled": true, "percent": 37.5,
                             "variants": [{"name": "a", "weight": 30}, {"name": "b", "weight": 70}]});
    let fallthrough = FlagSet::from_document(&document(plain_entry, json!({})));
    let mut on = 0;
    for i in 0..2_000 {
        let user = format!("user-{i}");
        let answer = set.evaluate_with("f", &Context::new(user.as_str()).with("plan", "pro"));
        let rank = rollout_rank("f", &user);
        assert_eq!(answer.reason, Reason::TargetingMatch);
        assert_eq!(answer.rule, Some("half"));
        assert_eq!(answer.rank, Some(rank));
        assert_eq!(answer.enabled, u32::from(rank) < percent_threshold(37.5));
        // The same answer, variant included, as the flag's own percent would give.
        let same = fallthrough.evaluate("f", Some(&user));
        assert_eq!(
            (answer.enabled, answer.variant),
            (same.enabled, same.variant)
        );
        on += usize::from(answer.enabled);
    }
    assert!((650..850).contains(&on), "{on} of 2000 in at 37.5%");

    let anonymous_pro = Context::anonymous().with("plan", "pro");
    let answer = set.evaluate_with("f", &anonymous_pro);
    assert_eq!(
        (answer.enabled, answer.reason, answer.rule, answer.rank),
        (false, Reason::NoUser, Some("half"), None)
    );
    entry["targeting"] = rule(100.0);
    let full = FlagSet::from_document(&document(entry, json!({})));
    let answer = full.evaluate_with("f", &anonymous_pro);
    assert_eq!(
        (answer.enabled, answer.reason, answer.variant, answer.rank),
        (true, Reason::TargetingMatch, None, None)
    );
    let answer = full.evaluate_with("f", &Context::new("u").with("plan", "pro"));
    assert_eq!((answer.enabled, answer.rank), (true, None));
    assert!(answer.variant.is_some());
}

#[test]
fn calls_for_many_flags_answer_as_one_by_one() {
    let set = FlagSet::from_document(&segment_document());
    let users = [
        Context::new("alice"),
        Context::new("bob")
            .with("email", "b@example.com")
            .with("verified", true),
        Context::anonymous(),
    ];
    for context in &users {
        let many = set.evaluate_many_with(["f", "missing", "f"], context);
        assert_eq!(
            many,
            ["f", "missing", "f"].map(|key| set.evaluate_with(key, context))
        );
        assert_eq!(
            set.is_enabled_many_with(["f", "missing"], context),
            [set.is_enabled_with("f", context), false]
        );
    }
}

/// The error of checking `document`, which must fail.
fn check_error(flag: Value, segments: Value) -> String {
    let key = flag["key"].as_str().unwrap().to_owned();
    let json = json!({"schemaVersion": 2, "flags": {key: flag}, "segments": segments});
    match FlagDocument::from_json(json.to_string().as_bytes()) {
        Ok(_) => panic!("accepted:\n{json:#}"),
        Err(error @ DocumentError::InvalidTargeting { .. }) => error.to_string(),
        Err(error) => panic!("refused for another reason: {error}"),
    }
}

fn rule_with(condition: Value) -> Value {
    flag(
        50.0,
        json!([{"name": "r", "conditions": [condition], "serve": {"enabled": true}}]),
    )
}

#[test]
fn malformed_rules_are_refused_with_their_path() {
    let good = json!({"name": "ok", "conditions": [{"attribute": "a", "operator": "Exists", "values": []}],
                      "serve": {"enabled": true}});
    let cases: Vec<(Value, Value, &str)> = vec![
        (
            flag(1.0, json!([good, good])),
            json!({}),
            "flags.f.targeting[1].name: \"ok\" names an earlier rule too",
        ),
        (
            flag(
                1.0,
                json!([{"name": "Bad_Name", "conditions": good["conditions"], "serve": {"enabled": true}}]),
            ),
            json!({}),
            "flags.f.targeting[0].name: \"Bad_Name\" is not a rule name",
        ),
        (
            flag(
                1.0,
                json!([{"name": "r", "conditions": [], "serve": {"enabled": true}}]),
            ),
            json!({}),
            "flags.f.targeting[0].conditions: 0 conditions; a rule has 1 to 16",
        ),
        (
            rule_with(condition("n", "Lt", &["1", "2"])),
            json!({}),
            "flags.f.targeting[0].conditions[0].values: Lt takes exactly 1 value, got 2",
        ),
        (
            rule_with(condition("n", "Gte", &["1."])),
            json!({}),
            "flags.f.targeting[0].conditions[0].values[0]: \"1.\" is not a decimal number",
        ),
        (
            rule_with(condition("v", "SemverEq", &["v1.2"])),
            json!({}),
            "flags.f.targeting[0].conditions[0].values[0]: \"v1.2\" is not a version",
        ),
        (
            rule_with(condition("s", "In", &[])),
            json!({}),
            "flags.f.targeting[0].conditions[0].values: In takes 1 to 100 values, got 0",
        ),
        (
            rule_with(condition("s", "Contains", &["a", ""])),
            json!({}),
            "flags.f.targeting[0].conditions[0].values[1]: \"\" is not a non-empty string",
        ),
        (
            rule_with(condition("s", "Exists", &["x"])),
            json!({}),
            "flags.f.targeting[0].conditions[0].values: Exists takes no values, got 1",
        ),
        (
            rule_with(json!({"operator": "In", "values": ["x"]})),
            json!({}),
            "flags.f.targeting[0].conditions[0].attribute: In needs an attribute",
        ),
        (
            rule_with(condition("s", "InSegment", &["beta"])),
            json!({}),
            "flags.f.targeting[0].conditions[0].attribute: InSegment tests the user",
        ),
        (
            rule_with(
                json!({"operator": "InSegment", "values": (0..11).map(|i| format!("s{i}")).collect::<Vec<_>>()}),
            ),
            json!({}),
            "flags.f.targeting[0].conditions[0].values: InSegment takes 1 to 10 values, got 11",
        ),
        (
            flag(
                1.0,
                json!([{"name": "r", "conditions": good["conditions"], "serve": {"variant": "nope"}}]),
            ),
            json!({}),
            "flags.f.targeting[0].serve.variant: \"nope\" is not one of the flag's variants",
        ),
        (
            flag(
                1.0,
                json!([{"name": "r", "conditions": good["conditions"], "serve": {"percent": 100.5}}]),
            ),
            json!({}),
            "flags.f.targeting[0].serve.percent: 100.5 is outside 0..100",
        ),
        (
            flag(1.0, json!([])),
            json!({"beta": {"rules": [{"conditions": [{"operator": "InSegment", "values": ["beta"]}]}]}}),
            "segments.beta.rules[0].conditions[0].operator: InSegment is not allowed inside a segment",
        ),
        (
            flag(1.0, json!([])),
            json!({"beta": {"rules": [{"conditions": [condition("v", "SemverLt", &["1.02"])]}]}}),
            "segments.beta.rules[0].conditions[0].values[0]: \"1.02\" is not a version",
        ),
        (
            flag(1.0, json!([])),
            json!({"beta": {"rules": [{"conditions": []}]}}),
            "segments.beta.rules[0].conditions: 0 conditions",
        ),
    ];
    for (flag, segments, expected) in cases {
        let error = check_error(flag, segments);
        assert!(
            error.contains(expected),
            "expected {expected:?} in\n  {error}"
        );
    }
    let too_many: Vec<Value> = (0..33)
        .map(|i| json!({"name": format!("r{i}"), "conditions": good["conditions"], "serve": {"enabled": true}}))
        .collect();
    assert!(check_error(flag(1.0, json!(too_many)), json!({})).contains("33 rules"));
}

#[test]
fn the_client_names_the_rule_a_document_was_refused_for() {
    let good = json!({"schemaVersion": 2, "flags": {"f": rule_with(condition("n", "Gt", &["1"]))}});
    let flags = rollgate_sdk::Flags::from_json(good.to_string().as_bytes()).unwrap();
    assert!(flags.is_enabled_with("f", &Context::new("u").with("n", 2)));
    assert!(!flags.is_enabled("f", Some("u")));
    let bad =
        json!({"schemaVersion": 2, "flags": {"f": rule_with(condition("n", "Gt", &["two"]))}});
    let error = rollgate_sdk::Flags::from_json(bad.to_string().as_bytes()).unwrap_err();
    assert!(
        error
            .to_string()
            .contains("flags.f.targeting[0].conditions[0].values[0]"),
        "{error}"
    );
}
