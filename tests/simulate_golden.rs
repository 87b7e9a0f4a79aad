//! `rollgate simulate` end to end: the real binary on the examples, compared with golden
//! files, plus exit codes and line-numbered errors for bad input.
//!
//! Regenerate the golden files after an intended change with
//! `ROLLGATE_BLESS=1 cargo test --test simulate_golden`, and review the diff.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Runs the binary from the repository root, so paths in its output are the relative ones
/// a person would type.
fn rollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .current_dir(root())
        .args(args)
        .output()
        .expect("rollgate runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn golden(name: &str, actual: &str) {
    let path = root().join("tests/golden").join(name);
    if std::env::var_os("ROLLGATE_BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with ROLLGATE_BLESS=1", path.display()));
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(e, a)| e != a)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the output, first at line {}:\n--- expected\n{}\n--- actual\n{}\n(the whole output:)\n{actual}",
            path.display(),
            first + 1,
            expected.lines().nth(first).unwrap_or("<end>"),
            actual.lines().nth(first).unwrap_or("<end>"),
        );
    }
}

#[test]
fn the_spike_at_25_percent_rolls_back_within_two_minutes() {
    let output = rollgate(&[
        "simulate",
        "examples/ramp.yaml",
        "--metrics",
        "examples/metrics/spike-at-25.csv",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    golden("simulate-spike-at-25.txt", &stdout(&output));
}

#[test]
fn the_healthy_morning_completes_despite_its_noise() {
    let output = rollgate(&[
        "simulate",
        "examples/ramp.yaml",
        "--metrics",
        "examples/metrics/healthy.csv",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    golden("simulate-healthy.txt", &stdout(&output));
}

#[test]
fn replayed_requests_pause_and_resume_the_ramp() {
    let output = rollgate(&[
        "simulate",
        "examples/ramp.yaml",
        "--metrics",
        "examples/metrics/healthy.csv",
        "--requests",
        "examples/requests/pause-for-a-deploy.csv",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    golden("simulate-healthy-paused.txt", &stdout(&output));
}

#[test]
fn the_guardrail_rolls_back_a_regression_the_absolute_check_misses() {
    let output = rollgate(&[
        "simulate",
        "examples/guarded-ramp.yaml",
        "--metrics",
        "examples/metrics/treatment-regression-at-5.csv",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    assert_eq!(stderr(&output), "");
    let out = stdout(&output);
    golden("simulate-treatment-regression-at-5.txt", &out);
    let summary = out.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("rolled back: 5% (step 1 of 0–4) → 0% at ")
            && summary.contains(": guardrail errors: regression: treatment "),
        "{summary}"
    );

    let output = rollgate(&[
        "simulate",
        "examples/guarded-ramp.yaml",
        "--metrics",
        "examples/metrics/treatment-regression-at-5.csv",
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(3));
    let trace: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(
        trace["finalStatus"]["rollback"]["reason"],
        "GuardrailRegression"
    );
    // The absolute check passed at every analysis, the one that rolled back included.
    let runs: Vec<&serde_json::Value> = trace["ticks"]
        .as_array()
        .expect("ticks")
        .iter()
        .filter(|tick| tick["analysis"].is_object())
        .collect();
    assert!(runs.len() > 10, "{} analyses", runs.len());
    for tick in &runs {
        let metric = &tick["analysis"]["metrics"][0];
        assert_eq!(metric["name"], "error-ratio");
        assert_eq!(metric["verdict"], "Pass", "{tick}");
        assert!(metric["value"].as_f64().expect("a value") < 0.01);
        assert_eq!(tick["analysis"]["guardrails"][0]["name"], "errors");
    }
    assert!(trace["summary"]["breach"].is_null());
    let breach = &trace["summary"]["guardrailBreach"];
    assert_eq!(breach["name"], "errors");
    assert_eq!(breach["verdict"], "Regression");
    assert_eq!(breach["tolerance"], "maxRelativeIncrease 0.1");
    let (treatment, control, bound) = (
        breach["treatmentRate"].as_f64().expect("rate"),
        breach["controlRate"].as_f64().expect("rate"),
        breach["bound"].as_f64().expect("bound"),
    );
    assert!((bound - control * 1.1).abs() < 1e-12, "{breach}");
    assert!(treatment > 2.0 * control, "{breach}");
    assert!(breach["interval"]["lower"].as_f64().expect("interval") > 0.0);
    assert_eq!(runs.last().expect("runs")["guardrails"][0], *breach);
}

#[test]
fn the_same_history_without_the_regression_completes() {
    let output = rollgate(&[
        "simulate",
        "examples/guarded-ramp.yaml",
        "--metrics",
        "examples/metrics/treatment-healthy.csv",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    golden("simulate-treatment-healthy.txt", &stdout(&output));
}

/// The counts of one cohort of the `errors` guardrail at `time`, read from the CSV itself.
fn cohort_total(csv: &str, time: &str, cohort: &str) -> u64 {
    csv.lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields.len() == 6 && fields[0] == time && fields[1] == "errors" && fields[3] == cohort)
                .then(|| fields[5].parse().expect("a count"))
        })
        .unwrap_or_else(|| panic!("no {cohort} row at {time}"))
}

#[test]
fn a_retried_ramp_counts_its_guardrails_from_its_own_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let requests = temp_file(&dir, "retry.csv", "time,verb\n2025-03-18T09:30:00Z,retry\n");
    let output = rollgate(&[
        "simulate",
        "examples/guarded-ramp.yaml",
        "--metrics",
        "examples/metrics/treatment-regression-at-5.csv",
        "--requests",
        requests.to_str().expect("path"),
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let trace: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    let ticks = trace["ticks"].as_array().expect("ticks");
    let retry = ticks
        .iter()
        .position(|tick| tick["request"] == "retry")
        .expect("the retry");
    assert_eq!(ticks[retry]["events"][0]["reason"], "RetryStarted");
    assert_eq!(
        trace["finalStatus"]["rampStartedAt"],
        "2025-03-18T09:30:00Z"
    );
    // The first look of the new ramp, a minute later, counts that minute only.
    let first = ticks[retry + 1..]
        .iter()
        .find(|tick| tick["analysis"].is_object())
        .expect("an analysis after the retry");
    assert_eq!(first["time"], "2025-03-18T09:31:00Z");
    let csv =
        std::fs::read_to_string(root().join("examples/metrics/treatment-regression-at-5.csv"))
            .expect("history");
    let reading = &first["guardrails"][0];
    for (side, cohort) in [("control", "control"), ("treatment", "treatment")] {
        let expected = cohort_total(&csv, "2025-03-18T09:31:00Z", cohort)
            - cohort_total(&csv, "2025-03-18T09:30:00Z", cohort);
        assert!(expected > 0);
        assert_eq!(reading[side]["total"], expected, "{side}: {reading}");
    }
    // The regression is found again after the retry, and rolls back again.
    assert_eq!(trace["summary"]["guardrailBreach"]["name"], "errors");
    assert_eq!(
        trace["finalStatus"]["rollback"]["reason"],
        "GuardrailRegression"
    );
}

/// `examples/guarded-ramp.yaml` with another `minSamplesPerCohort` and `maxStepDuration`.
fn guarded_flag(dir: &tempfile::TempDir, min_samples: u32, max_step: &str) -> PathBuf {
    let text = std::fs::read_to_string(root().join("examples/guarded-ramp.yaml")).expect("example");
    let text = text
        .replace(
            "minSamplesPerCohort: 500",
            &format!("minSamplesPerCohort: {min_samples}"),
        )
        .replace(
            "maxStepDuration: 2h",
            &format!("maxStepDuration: {max_step}"),
        );
    assert!(text.contains(&format!("minSamplesPerCohort: {min_samples}")));
    temp_file(dir, &format!("guarded-{min_samples}.yaml"), &text)
}

#[test]
fn a_step_short_of_guardrail_samples_waits_for_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    // 2,000 treatment events at 1% take 13 minutes, three more than the pause.
    let flag = guarded_flag(&dir, 2000, "2h");
    let output = rollgate(&[
        "simulate",
        flag.to_str().expect("path"),
        "--metrics",
        "examples/metrics/treatment-healthy.csv",
    ]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains("   +0:10:00  WaitingForSamples  step 0 of 0–4 at 1%: pause elapsed; the step is extended: guardrail errors has 807 treatment and 79484 control events in this step, 2000 each needed\n"),
        "{out}"
    );
    assert_eq!(out.matches("WaitingForSamples").count(), 1, "{out}");
    assert!(
        out.contains("   +0:13:00  StepAdvanced      advanced to step 1 of 0–4 (5%)"),
        "{out}"
    );

    // 5,000 take longer than maxStepDuration 20m: the engine's GuardrailStarved event.
    let flag = guarded_flag(&dir, 5000, "20m");
    let output = rollgate(&[
        "simulate",
        flag.to_str().expect("path"),
        "--metrics",
        "examples/metrics/treatment-healthy.csv",
    ]);
    let out = stdout(&output);
    assert!(
        out.contains("   +0:20:00  GuardrailStarved  the step has run longer than maxStepDuration 20m without enough guardrail samples: "),
        "{out}"
    );
}

#[test]
fn json_gives_the_full_trace() {
    let output = rollgate(&[
        "simulate",
        "examples/ramp.yaml",
        "--metrics",
        "examples/metrics/spike-at-25.csv",
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(3));
    let trace: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(trace["exitCode"], 3);
    assert_eq!(trace["summary"]["outcome"], "rolledBack");
    assert_eq!(trace["summary"]["at"], "2025-03-11T10:06:00Z");
    assert_eq!(trace["summary"]["analyses"], 66);
    assert_eq!(trace["summary"]["breach"]["metric"], "error-ratio");
    assert_eq!(trace["summary"]["breach"]["max"], 0.01);
    let ticks = trace["ticks"].as_array().expect("ticks");
    // The start, then one call per analysis.
    assert_eq!(ticks.len(), 67);
    assert_eq!(ticks[0]["events"][0]["reason"], "RolloutStarted");
    let last = &ticks[66];
    assert_eq!(last["analysis"]["verdict"], "Fail");
    assert_eq!(last["analysis"]["metrics"][0]["value"], 0.0412);
    assert_eq!(trace["finalStatus"]["phase"], "RolledBack");
}

#[test]
fn data_that_ends_first_is_unfinished() {
    let output = rollgate(&[
        "simulate",
        "examples/ramp.yaml",
        "--metrics",
        "examples/metrics/healthy.csv",
        "--start",
        "2025-03-11T10:00:00Z",
    ]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let out = stdout(&output);
    let summary = out.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with(
            "unfinished: at 50% (step 3 of 0–4) when the data ended at 2025-03-11T12:00:00Z, 2:00:00 after the start;"
        ),
        "{out}"
    );
}

/// Writes `body` to a temporary file named `name` and returns its path.
fn temp_file(dir: &tempfile::TempDir, name: &str, body: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, body).expect("write temp file");
    path
}

#[test]
fn a_history_in_seconds_and_a_missing_metric() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut csv = String::from("time,metric,value\n");
    for minute in 0..=170 {
        csv.push_str(&format!("{},error-ratio,0.002\n", minute * 60));
    }
    let path = temp_file(&dir, "seconds.csv", &csv);
    let output = rollgate(&[
        "simulate",
        "examples/ramp.yaml",
        "--metrics",
        path.to_str().expect("path"),
    ]);
    // p99 never has data: every analysis holds (onNoData Hold) and the ramp never leaves 1%.
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains("start: 0 (the history counts seconds from it)"),
        "{out}"
    );
    assert!(
        out.contains("note: the history has no rows for p99-latency-seconds: every analysis sees no data for it (onNoData Hold)"),
        "{out}"
    );
    assert!(out.contains("   +0:01:00  AnalysisHeld      analysis held at step 0 of 0–4: metric p99-latency-seconds has no data (the history has no rows for this metric): onNoData Hold, holding\n"), "{out}");
    assert!(
        out.contains("   +0:02:00  Analysis          169 held through +2:50:00: "),
        "{out}"
    );
    let summary = out.lines().last().unwrap_or_default();
    assert!(
        summary.starts_with("held: at 1% (step 0 of 0–4) when the data ended at 2:50:00 after the start: metric p99-latency-seconds has no data"),
        "{summary}"
    );
    assert!(
        summary.ends_with("170 analyses: 0 passed, 0 failed, 170 held"),
        "{summary}"
    );
}

#[test]
fn bad_csv_names_the_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = "2025-03-11T09:00:00Z,error-ratio,0.002\n";
    let cases = [
        (
            "bad-time.csv",
            format!("# comment\ntime,metric,value\n{good}09:01,error-ratio,0.002\n"),
            "bad-time.csv: line 4: bad time \"09:01\": expected RFC 3339 (2025-03-11T09:00:00Z) or seconds from the start (90, 12.5)",
        ),
        (
            "unknown-metric.csv",
            format!("time,metric,value\n{good}\n2025-03-11T09:01:00Z,error_ratio,0.002\n"),
            "unknown-metric.csv: line 4: unknown metric \"error_ratio\": the flag's spec.rollout.analysis.metrics are error-ratio, p99-latency-seconds",
        ),
        (
            "unsorted.csv",
            format!("time,metric,value\n2025-03-11T09:02:00Z,error-ratio,0.002\n{good}"),
            "unsorted.csv: line 3: rows must be sorted by time: 2025-03-11T09:00:00Z comes before 2025-03-11T09:02:00Z on line 2",
        ),
        (
            "bad-value.csv",
            format!("time,metric,value\n{good}2025-03-11T09:01:00Z,error-ratio,0.2%\n"),
            "bad-value.csv: line 3: bad value \"0.2%\": expected a number, nothing (no data) or error:<message>",
        ),
    ];
    for (name, body, message) in cases {
        let path = temp_file(&dir, name, &body);
        let output = rollgate(&[
            "simulate",
            "examples/ramp.yaml",
            "--metrics",
            path.to_str().expect("path"),
        ]);
        assert_eq!(output.status.code(), Some(2), "{name}: {}", stdout(&output));
        let err = stderr(&output);
        assert!(err.starts_with("rollgate: "), "{err}");
        assert!(err.trim_end().ends_with(message), "{name}:\n{err}");
        assert_eq!(stdout(&output), "", "{name}");
    }
}

#[test]
fn bad_guardrail_rows_name_the_file_and_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let header = "time,metric,value,cohort,bad,total\n";
    let good = "2025-03-18T09:00:00Z,error-ratio,0.005\n\
        2025-03-18T09:00:00Z,errors,,treatment,0,0\n\
        2025-03-18T09:00:00Z,errors,,control,40,8000\n";
    let cases = [
        (
            "unknown-guardrail.csv",
            format!("{header}{good}2025-03-18T09:01:00Z,error,,treatment,1,80\n"),
            "unknown-guardrail.csv: line 5: unknown metric or guardrail \"error\": the flag's spec.rollout.analysis.metrics are error-ratio, and its guardrails are errors",
        ),
        (
            "going-down.csv",
            format!("{header}{good}2025-03-18T09:01:00Z,errors,,control,30,16000\n"),
            "going-down.csv: line 5: guardrail errors: cohort control went down to 30 bad of 16000 from 40 bad of 8000 on line 4; the counts are cumulative since the start of the history",
        ),
        (
            "bad-count.csv",
            format!("{header}{good}2025-03-18T09:01:00Z,errors,,treatment,1,eighty\n"),
            "bad-count.csv: line 5: bad total count \"eighty\": expected a number of events, 0 or more",
        ),
        (
            "one-side.csv",
            format!("{header}2025-03-18T09:00:00Z,errors,,treatment,0,0\n"),
            "one-side.csv: line 2: guardrail errors: the file has no rows with the control's counts; add them (0,0 while it has no events)",
        ),
    ];
    for (name, body, message) in cases {
        let path = temp_file(&dir, name, &body);
        let output = rollgate(&[
            "simulate",
            "examples/guarded-ramp.yaml",
            "--metrics",
            path.to_str().expect("path"),
        ]);
        assert_eq!(output.status.code(), Some(2), "{name}: {}", stdout(&output));
        let err = stderr(&output);
        assert!(err.trim_end().ends_with(message), "{name}:\n{err}");
        assert_eq!(stdout(&output), "", "{name}");
    }
    // Without guardrail rows every analysis holds on the guardrail, and the output says why.
    let path = temp_file(
        &dir,
        "metrics-only.csv",
        "time,metric,value\n0,error-ratio,0.005\n3600,error-ratio,0.005\n",
    );
    let output = rollgate(&[
        "simulate",
        "examples/guarded-ramp.yaml",
        "--metrics",
        path.to_str().expect("path"),
    ]);
    assert_eq!(output.status.code(), Some(4), "{}", stderr(&output));
    let out = stdout(&output);
    assert!(
        out.contains("note: the history has no rows for guardrail errors: it cannot look, so every analysis holds\n"),
        "{out}"
    );
    assert!(
        out.contains("   +0:01:00  Analysis          1 held by its guardrails: error-ratio 0.005 (max 0.01)\n"),
        "{out}"
    );
}

#[test]
fn bad_requests_and_options_are_bad_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let late = temp_file(
        &dir,
        "late.csv",
        "time,verb\n2025-03-11T13:00:00Z,promote\n",
    );
    let unknown = temp_file(
        &dir,
        "unknown.csv",
        "time,verb\n600,promote\n900,rollback\n",
    );
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--requests", late.to_str().expect("path")],
            "late.csv: line 2: the promote request at 2025-03-11T13:00:00Z is after the end of the data 2025-03-11T12:00:00Z",
        ),
        (
            vec!["--requests", unknown.to_str().expect("path")],
            "unknown.csv: line 3: unknown verb \"rollback\": expected one of pause, resume, promote, promote-full, abort, retry, kill, unkill",
        ),
        (
            vec!["--start", "2025-03-12T00:00:00Z"],
            "the start 2025-03-12T00:00:00Z is after the end of the data 2025-03-11T12:00:00Z",
        ),
    ];
    for (extra, message) in cases {
        let mut args = vec![
            "simulate",
            "examples/ramp.yaml",
            "--metrics",
            "examples/metrics/healthy.csv",
        ];
        args.extend(extra);
        let output = rollgate(&args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&output).trim_end().ends_with(message),
            "{}",
            stderr(&output)
        );
    }
    // A static flag has nothing to ramp, and the metric source is required.
    let output = rollgate(&[
        "simulate",
        "examples/static-flag.yaml",
        "--metrics",
        "examples/metrics/healthy.csv",
    ]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("nothing to simulate"),
        "{}",
        stderr(&output)
    );
    let output = rollgate(&["simulate", "examples/ramp.yaml"]);
    assert_eq!(output.status.code(), Some(2));
    let output = rollgate(&[
        "simulate",
        "examples/ramp.yaml",
        "--prometheus",
        "http://127.0.0.1:9",
    ]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "--from and --to are required"
    );
}
