//! `rollgate eval` end to end: the text line, the `--json` object and every reason, on the
//! committed example document. Ranks are recomputed here with an independent reduction of
//! the digest (byte-wise long division), not with the SDK's code.

use std::process::Command;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const FLAGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/published/flags.json");

fn eval(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["eval", "--flags", FLAGS])
        .args(args)
        .output()
        .expect("run rollgate");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// `r = (f mod 100)·100 + ⌊f/100⌋` with `f = sha256("key:user") mod 10000` (docs/evaluation.md).
fn reference_rank(key: &str, user: &str) -> u32 {
    let digest = Sha256::digest(format!("{key}:{user}").as_bytes());
    let f = digest
        .iter()
        .fold(0u32, |acc, byte| (acc * 256 + u32::from(*byte)) % 10_000);
    (f % 100) * 100 + f / 100
}

fn json(args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let (code, stdout, stderr) = eval(&all);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        stdout.lines().count(),
        1,
        "one object on one line: {stdout}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn percent_answers_follow_the_reference_rank() {
    // new-checkout is at 5%: on iff the rank is below 500.
    let users: Vec<String> = (0..200).map(|i| format!("user-{i}")).collect();
    let mut seen = (0, 0);
    for user in &users {
        let rank = reference_rank("new-checkout", user);
        let on = rank < 500;
        let (code, stdout, _) = eval(&["--key", "new-checkout", "--user", user]);
        assert_eq!(code, Some(0));
        let verdict = if on { "on " } else { "off" };
        assert_eq!(
            stdout,
            format!("{verdict}  key=new-checkout user={user} rank={rank}/10000 reason=percent\n")
        );
        if on {
            seen.0 += 1;
        } else {
            seen.1 += 1;
        }
    }
    assert!(seen.0 > 0 && seen.1 > 0, "both answers occur: {seen:?}");
}

#[test]
fn json_has_the_documented_keys_and_each_reason() {
    let object = json(&["--key", "search-v2", "--user", "1001"]);
    let keys: Vec<&str> = object
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "enabled", "key", "rank", "reason", "rule", "user", "variant"
        ],
        "{object}"
    );
    assert_eq!(object["enabled"], true);
    assert_eq!(object["reason"], "allow-list");
    assert_eq!(object["user"], "1001");
    assert_eq!(object["rank"], reference_rank("search-v2", "1001"));
    assert_eq!(object["variant"], Value::Null);

    let disabled = json(&["--key", "recommendations", "--user", "x"]);
    assert_eq!(
        (&disabled["enabled"], &disabled["reason"]),
        (&false.into(), &"disabled".into())
    );

    let missing = json(&["--key", "no-such-flag", "--user", "x"]);
    assert_eq!(
        (&missing["enabled"], &missing["reason"]),
        (&false.into(), &"missing".into())
    );

    let no_user = json(&["--key", "dark-mode"]);
    assert_eq!(no_user["reason"], "no-user");
    assert_eq!(no_user["user"], Value::Null);
    assert_eq!(no_user["rank"], Value::Null);

    let percent = json(&["--key", "dark-mode", "--user", "42"]);
    assert_eq!(percent["reason"], "percent");
    assert_eq!(percent["enabled"], reference_rank("dark-mode", "42") < 2500);
}

#[test]
fn bad_documents_are_one_line_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text, needle) in [
        (
            "version.json",
            r#"{"schemaVersion": 7, "flags": {}}"#,
            "schemaVersion",
        ),
        (
            "truncated.json",
            r#"{"schemaVersion": 1, "flags": {"#,
            "truncated.json",
        ),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .args(["eval", "--flags", path.to_str().unwrap(), "--key", "a"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(path.to_str().unwrap()), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

const TARGETING: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/examples/published/targeting.json"
);

fn eval_targeting(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args([
            "eval",
            "--flags",
            TARGETING,
            "--key",
            "new-pricing-page",
            "--json",
        ])
        .args(args)
        .output()
        .expect("run rollgate");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn context_attributes_reach_the_targeting_rules() {
    // The first matching rule decides, before the ramp's 1%.
    let legal = eval_targeting(&[
        "--user",
        "carol",
        "--context",
        "country=DE",
        "--context",
        "plan=enterprise",
    ]);
    assert_eq!(
        (&legal["enabled"], &legal["reason"], &legal["rule"]),
        (
            &json!(false),
            &json!("targeting-match"),
            &json!("legal-hold")
        )
    );
    let enterprise = eval_targeting(&["--user", "carol", "--context", "plan=enterprise"]);
    assert_eq!(
        (&enterprise["enabled"], &enterprise["rule"]),
        (&json!(true), &json!("enterprise"))
    );
    // A segment's included user on app 4.3.0: the rule's 50% on the flag's own rank.
    let beta = eval_targeting(&["--user", "alice", "--context", "appVersion=4.3.0"]);
    assert_eq!(beta["rule"], json!("beta-on-new-app"));
    let in_half = reference_rank("new-pricing-page", "alice") < 5000;
    assert_eq!(beta["enabled"], json!(in_half));
    // Excluded from the segment, or on an older app: the ramp decides.
    for args in [
        ["--user", "mallory", "--context", "appVersion=4.3.0"],
        ["--user", "alice", "--context", "appVersion=4.1.9"],
    ] {
        let fallthrough = eval_targeting(&args);
        assert_eq!(fallthrough["reason"], json!("percent"), "{args:?}");
        assert_eq!(fallthrough["rule"], Value::Null, "{args:?}");
    }
    // A segment rule on a typed attribute list is not a string: `email:=[...]` holds any.
    let by_email = eval_targeting(&[
        "--user",
        "dave",
        "--context",
        r#"email:=["dave@elsewhere.org","dave@example.com"]"#,
        "--context",
        "appVersion=5",
    ]);
    assert_eq!(by_email["rule"], json!("beta-on-new-app"));
}

#[test]
fn typed_context_values_are_not_strings() {
    // `appVersion:=4.3` is the number 4.3, which no version operator takes: no rule matches.
    let number = eval_targeting(&["--user", "alice", "--context", "appVersion:=4.3"]);
    assert_eq!(number["reason"], json!("percent"));
    assert_eq!(number["rule"], Value::Null);
}

#[test]
fn a_malformed_context_argument_is_named() {
    for (argument, expected) in [
        ("plan", "is not NAME=VALUE"),
        ("=x", "has no attribute name"),
        ("age:=forty", "age: \"forty\" is not JSON"),
        ("groups:=[1,2]", "groups: a list may hold only strings"),
        (
            "meta:={}",
            "is not a number, boolean, string or list of strings",
        ),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_rollgate"))
            .args(["eval", "--flags", TARGETING, "--key", "new-pricing-page"])
            .args(["--context", argument])
            .output()
            .expect("run rollgate");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_ne!(output.status.code(), Some(0), "{argument}");
        assert!(
            stderr.contains("--context") && stderr.contains(expected),
            "{argument}: {stderr}"
        );
    }
}
