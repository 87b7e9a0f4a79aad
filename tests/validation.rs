//! Offline validation: every invalid fixture is refused by `validate()` with its field path,
//! by the CLI with exit code 2, and (for cross-field rules) by the CRD's own CEL rules.

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::core::cel::validate_cel;
use rollgate::manifest::{ManifestDocument, load_file};
use rollgate_core::crd::FeatureFlag;
use rollgate_core::segment::Segment;

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());
    paths
}

/// The `# expect:` and `# cel:` header lines of a fixture.
fn header(path: &Path, tag: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .find_map(|line| line.strip_prefix(&format!("# {tag}: ")).map(str::to_string))
}

fn rollgate(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(args)
        .output()
        .expect("run rollgate")
}

#[test]
fn every_invalid_fixture_reports_its_field() {
    for path in fixtures("tests/fixtures/invalid") {
        let expected =
            header(&path, "expect").unwrap_or_else(|| panic!("{}: no # expect", path.display()));
        let file = load_file(&path).unwrap();
        let lines = file.violation_lines();
        assert!(
            lines.iter().any(|line| line.contains(&expected)),
            "{}: expected a violation containing {expected:?}, got {lines:#?}",
            path.display()
        );
        assert_eq!(file.valid_flags().count(), 0, "{}", path.display());
        assert_eq!(file.valid_segments().count(), 0, "{}", path.display());
    }
}

#[test]
fn cli_rejects_each_fixture_with_exit_2_and_file_named() {
    for path in fixtures("tests/fixtures/invalid") {
        let output = rollgate(&["validate", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{}: {stderr}",
            path.display()
        );
        assert!(stderr.starts_with(path.to_str().unwrap()), "{stderr}");
        assert!(
            stderr.contains(": FeatureFlag/") || stderr.contains(": Segment/"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn examples_are_valid() {
    let examples: Vec<String> = fixtures("examples")
        .into_iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["validate"];
    args.extend(examples.iter().map(String::as_str));
    let output = rollgate(&args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn unreadable_and_malformed_files_are_one_line_errors() {
    let dir = std::env::temp_dir().join(format!("rollgate-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let malformed = dir.join("malformed.yaml");
    std::fs::write(&malformed, "spec: [unclosed\n").unwrap();
    let missing = dir.join("missing.yaml");
    for (path, needle) in [
        (&malformed, "malformed YAML"),
        (&missing, "cannot read file"),
    ] {
        let output = rollgate(&["validate", path.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(path.to_str().unwrap()) && stderr.contains(needle),
            "{stderr}"
        );
    }
    let output = rollgate(&["eval", "--flags", malformed.to_str().unwrap(), "--key", "x"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("malformed.yaml"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn multi_document_files_report_every_document() {
    let dir = std::env::temp_dir().join(format!("rollgate-multidoc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("two.yaml");
    std::fs::write(
        &path,
        "apiVersion: rollgate.dev/v1alpha1\nkind: FeatureFlag\nmetadata: {name: one}\nspec: {percent: 101}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n---\n\
         apiVersion: rollgate.dev/v1alpha1\nkind: FeatureFlag\nmetadata: {name: two}\nspec: {percent: -1}\n",
    )
    .unwrap();
    let file = load_file(&path).unwrap();
    assert_eq!(file.documents.len(), 3);
    assert!(matches!(file.documents[1], ManifestDocument::Other { .. }));
    let lines = file.violation_lines();
    assert_eq!(lines.len(), 2, "{lines:#?}");
    assert!(lines[0].contains("FeatureFlag/one: spec.percent"));
    assert!(lines[1].contains("FeatureFlag/two: spec.percent"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The CEL rules in the CRD (enforced by Kubernetes ≥ 1.25, dropped by 1.20) refuse the same
/// cross-field fixtures as `validate()`, evaluated offline with kube's CEL interpreter.
#[test]
fn cel_rules_agree_with_validate_on_cross_field_fixtures() {
    let mut checked = 0;
    for path in fixtures("tests/fixtures/invalid") {
        let Some(cel_message) = header(&path, "cel") else {
            continue;
        };
        let value: serde_json::Value =
            serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let errors = if value["kind"] == "Segment" {
            let segment: Segment = serde_json::from_value(value).unwrap();
            validate_cel(&segment).map(|_| ())
        } else {
            let flag: FeatureFlag = serde_json::from_value(value).unwrap();
            validate_cel(&flag).map(|_| ())
        }
        .expect_err(&format!("{}: CEL accepted it", path.display()));
        let text = format!("{errors:?}");
        assert!(text.contains(&cel_message), "{}: {text}", path.display());
        checked += 1;
    }
    assert!(checked >= 8, "only {checked} CEL fixtures");
    for path in fixtures("examples") {
        let file = load_file(&path).unwrap();
        for flag in file.valid_flags() {
            if let Err(errors) = validate_cel(flag) {
                panic!(
                    "{}: CEL refused a valid example: {errors:?}",
                    path.display()
                );
            }
        }
        for segment in file.valid_segments() {
            if let Err(errors) = validate_cel(segment) {
                panic!(
                    "{}: CEL refused a valid example: {errors:?}",
                    path.display()
                );
            }
        }
    }
}

/// One flag with several problems gets every one of them back, each with its own path, in
/// one run: nobody fixes one field only to learn of the next.
#[test]
fn every_violation_of_one_flag_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("many.yaml");
    std::fs::write(
        &path,
        r#"apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata:
  name: many-problems
spec:
  key: Bad_Key
  enabled: true
  percent: 12.345
  variants:
    - {name: blue, weight: 50}
    - {name: blue, weight: 40}
  rollout:
    steps:
      - {percent: 50, pause: 10m}
      - {percent: 25, pause: soon}
"#,
    )
    .unwrap();
    let output = rollgate(&["validate", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let prefix = format!("{}: FeatureFlag/many-problems: ", path.display());
    for field in [
        "spec.key: ",
        "spec.percent: 12.345 has more than two decimals",
        "spec.percent: percent and rollout.steps are mutually exclusive",
        "spec.rollout.steps[1].percent: step percents must strictly increase",
        "spec.rollout.steps[1].pause: invalid duration \"soon\"",
        "spec.variants[1].name: variant names must be unique",
        "spec.variants: variant weights must sum to 100, got 90",
    ] {
        assert!(
            stderr
                .lines()
                .any(|line| line.starts_with(&format!("{prefix}{field}"))),
            "no line for {field:?} in:\n{stderr}"
        );
    }
    assert_eq!(stderr.lines().count(), 7, "{stderr}");
}

/// Given Segments, `rollgate validate` checks that each segment a flag's rules name is among
/// them, and names the flag, the rule and the segment when one is not; a flag given alone is
/// checked alone.
#[test]
fn flags_and_segments_are_checked_together() {
    let dir = tempfile::tempdir().unwrap();
    let flag = dir.path().join("flag.yaml");
    std::fs::write(
        &flag,
        r#"apiVersion: rollgate.dev/v1alpha1
kind: FeatureFlag
metadata: {name: pricing}
spec:
  enabled: true
  percent: 5
  targeting:
    - name: staff
      conditions:
        - {attribute: email, operator: EndsWith, values: ["@example.com"]}
      serve: {enabled: true}
    - name: beta
      conditions:
        - {operator: InSegment, values: [beta-testers, early-access]}
      serve: {percent: 50}
"#,
    )
    .unwrap();
    let segments = dir.path().join("segments.yaml");
    std::fs::write(
        &segments,
        "apiVersion: rollgate.dev/v1alpha1\nkind: Segment\nmetadata: {name: beta-testers}\nspec: {included: [alice]}\n",
    )
    .unwrap();
    let flag_path = flag.to_str().unwrap();

    let alone = rollgate(&["validate", flag_path]);
    assert!(
        alone.status.success(),
        "{}",
        String::from_utf8_lossy(&alone.stderr)
    );

    let together = rollgate(&["validate", flag_path, segments.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&together.stderr);
    assert_eq!(together.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!(
            "{flag_path}: FeatureFlag/pricing: spec.targeting[1].conditions[0].values[1]: rule \"beta\" names segment \"early-access\", which is not among the given Segments"
        )
    );

    std::fs::write(
        &segments,
        "apiVersion: rollgate.dev/v1alpha1\nkind: Segment\nmetadata: {name: beta-testers}\nspec: {included: [alice]}\n---\n\
         apiVersion: rollgate.dev/v1alpha1\nkind: Segment\nmetadata: {name: early-access}\nspec: {excluded: [mallory]}\n",
    )
    .unwrap();
    let complete = rollgate(&["validate", flag_path, segments.to_str().unwrap()]);
    assert!(
        complete.status.success(),
        "{}",
        String::from_utf8_lossy(&complete.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&complete.stdout),
        "1 FeatureFlag(s) and 2 Segment(s) valid in 2 file(s)\n"
    );
}
