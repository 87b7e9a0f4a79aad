//! `rollgate relay` over real HTTP on 127.0.0.1: the relay runs in-process on a free port,
//! its flags come from files, and a real HTTP client asks it. No cluster needed.
//!
//! - every shared vector (`sdk/testdata/vectors.json`): single and bulk answers equal the
//!   Rust SDK's answers mapped to OFREP, and the vector's own enabled/variant/reason/rank;
//! - every error code, the bulk ETag and 304, SSE `refetchEvaluation` after a file change
//!   (the delay is printed as `LATENCY relay_file_change_to_sse_ms`), tokens (401, 403, the
//!   stream ticket, reload), the request limit (429), the body limit (413), CORS, `/readyz`.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use clap::Parser;
use rollgate::relay::ofrep;
use rollgate::relay::{Relay, RelayArgs, RelayHandle};
use rollgate_sdk::{FlagDocument, FlagEntry, Flags};
use serde_json::{Value, json};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: RelayArgs,
}

async fn start(argv: &[&str]) -> (RelayHandle, String) {
    let args = Cli::try_parse_from(
        ["relay", "--listen", "127.0.0.1:0"]
            .into_iter()
            .chain(argv.iter().copied()),
    )
    .unwrap()
    .args;
    let relay = Relay::start(args).await.unwrap();
    let base = format!("http://{}", relay.local_addr);
    (relay, base)
}

fn client() -> reqwest::Client {
    // The workspace builds reqwest with rustls and no provider; plain HTTP still wants one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// POSTs `body` and returns the status, the headers and the body as JSON (`Null` if empty).
async fn post(
    client: &reqwest::Client,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = client.post(url).body(body.to_owned());
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.bytes().await.unwrap();
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|error| panic!("{url}: body is not JSON ({error}): {bytes:?}"))
    };
    (status, headers, json)
}

fn context(user: Option<&str>) -> String {
    match user {
        Some(user) => json!({"context": {"targetingKey": user}}).to_string(),
        None => json!({"context": {}}).to_string(),
    }
}

/// Writes `document` to `path` the way a ConfigMap volume changes: a new file renamed over.
fn write_document(path: &Path, document: &str) {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, document).unwrap();
    std::fs::rename(&temporary, path).unwrap();
}

fn vectors() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sdk/testdata/vectors.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Every flag of the evaluation vectors in one document (each key has one definition).
fn vector_document(vectors: &Value) -> FlagDocument {
    let mut document = FlagDocument::new();
    for case in vectors["evaluation"].as_array().unwrap() {
        if case["flag"].is_null() {
            continue;
        }
        let entry: FlagEntry = serde_json::from_value(case["flag"].clone()).unwrap();
        if let Some(known) = document.flags.get(&entry.key) {
            assert_eq!(known, &entry, "two definitions of {}", entry.key);
        }
        document.flags.insert(entry.key.clone(), entry);
    }
    document
}

/// The SDK's answer for (key, user) through the relay's mapping, as JSON.
fn expected(flags: &Flags, key: &str, user: Option<&str>) -> Value {
    let snapshot = flags.snapshot();
    let answer = ofrep::answer(
        key,
        snapshot.document().flags.get(key),
        snapshot.evaluate(key, user),
        user,
        1,
    );
    serde_json::to_value(answer).unwrap()
}

/// The answer agrees with the vector itself, not only with the SDK.
fn check_against_vector(case: &Value, answer: &Value) -> Result<(), String> {
    let reason = case["reason"].as_str().unwrap();
    if reason == "missing" {
        return (answer["errorCode"] == "FLAG_NOT_FOUND")
            .then_some(())
            .ok_or(format!("expected FLAG_NOT_FOUND, got {answer}"));
    }
    if answer.get("errorCode").is_some() {
        // Only a split without a key is refused.
        return (answer["errorCode"] == "TARGETING_KEY_MISSING" && case["user"].is_null())
            .then_some(())
            .ok_or(format!("unexpected error {answer}"));
    }
    let has_variants = !case["flag"]["variants"].as_array().unwrap().is_empty();
    // The reason mapping of docs/relay.md, written out independently of the relay's code.
    let static_off = case["flag"]["percent"].as_f64().unwrap() < 0.005;
    let want_reason = match reason {
        "disabled" => "DISABLED",
        "shipped" | "no-user" => "STATIC",
        "allow-list" => "TARGETING_MATCH",
        "full-rollout" if !has_variants => "STATIC",
        "percent" if static_off => "STATIC",
        _ => "SPLIT",
    };
    if answer["reason"] != want_reason {
        return Err(format!(
            "OFREP reason {} vs {want_reason}",
            answer["reason"]
        ));
    }
    let metadata = &answer["metadata"];
    if metadata["reason"] != case["reason"] {
        return Err(format!(
            "reason {} vs vector {}",
            metadata["reason"], case["reason"]
        ));
    }
    if metadata.get("rank").cloned().unwrap_or(Value::Null) != case["rank"] {
        return Err(format!(
            "rank {:?} vs vector {}",
            metadata.get("rank"),
            case["rank"]
        ));
    }
    let value = answer.get("value").cloned().unwrap_or(Value::Null);
    let wanted = if has_variants {
        case["variant"].clone()
    } else {
        case["enabled"].clone()
    };
    (value == wanted)
        .then_some(())
        .ok_or(format!("value {value} vs vector {wanted}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_vector_single_and_bulk_equals_the_sdk() {
    let vectors = vectors();
    let directory = tempfile::tempdir().unwrap();
    let document = vector_document(&vectors);
    let path = directory.path().join("vectors.json");
    std::fs::write(&path, document.to_json()).unwrap();
    // Every key of the bucketing vectors at 50%: the rank of each (key, user) comes back in
    // the metadata, through JSON, for unicode, NUL, BOM and 10 KB user ids.
    let bucketing = vectors["bucketing"].as_array().unwrap();
    let mut ranks = FlagDocument::new();
    for key in bucketing.iter().map(|case| case["key"].as_str().unwrap()) {
        let entry: FlagEntry =
            serde_json::from_value(json!({"key": key, "enabled": true, "percent": 50})).unwrap();
        ranks.flags.insert(key.to_owned(), entry);
    }
    let ranks_path = directory.path().join("ranks.json");
    std::fs::write(&ranks_path, ranks.to_json()).unwrap();
    let (relay, base) = start(&[
        "--flags-file",
        &format!("vectors={}", path.display()),
        "--flags-file",
        &format!("ranks={}", ranks_path.display()),
        "--max-context-string-bytes",
        "16384",
    ])
    .await;
    let client = client();
    let sdk = Flags::load(&path).unwrap();

    let mut failures = Vec::new();
    let cases = vectors["evaluation"].as_array().unwrap();
    for chunk in cases.chunks(32) {
        let answers = futures::future::join_all(chunk.iter().map(|case| {
            let key = case["flag"]["key"]
                .as_str()
                .or(case["key"].as_str())
                .unwrap()
                .to_owned();
            let url = format!("{base}/ns/vectors/ofrep/v1/evaluate/flags/{key}");
            let body = context(case["user"].as_str());
            let client = &client;
            async move { (key, post(client, &url, &body, &[]).await) }
        }))
        .await;
        for (case, (key, (status, _, answer))) in chunk.iter().zip(answers) {
            let user = case["user"].as_str();
            let want = expected(&sdk, &key, user);
            let want_status = ofrep_status(&want);
            if answer != want || status != want_status {
                failures.push(format!(
                    "{key} {user:?}: {status} {answer} != {want_status} {want}"
                ));
            } else if let Err(error) = check_against_vector(case, &answer) {
                failures.push(format!("{key} {user:?}: {error}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} single answers differ:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Bulk: every flag for every user of the vectors (and no user), one request each.
    let users: BTreeSet<Option<&str>> = cases.iter().map(|case| case["user"].as_str()).collect();
    for user in &users {
        let url = format!("{base}/ns/vectors/ofrep/v1/evaluate/flags");
        let (status, headers, body) = post(&client, &url, &context(*user), &[]).await;
        assert_eq!(status, 200, "{user:?}: {body}");
        assert!(headers.get("etag").is_some());
        let flags = body["flags"].as_array().unwrap();
        assert_eq!(flags.len(), document.flags.len());
        for answer in flags {
            let key = answer["key"].as_str().unwrap();
            assert_eq!(answer, &expected(&sdk, key, *user), "bulk {key} {user:?}");
        }
        assert_eq!(body["eventStreams"][0]["type"], "sse");
        assert_eq!(
            body["eventStreams"][0]["endpoint"]["requestUri"],
            "/ns/vectors/ofrep/v1/events"
        );
    }

    let mut rank_failures = Vec::new();
    for chunk in bucketing.chunks(32) {
        let answers = futures::future::join_all(chunk.iter().map(|case| {
            let url = format!(
                "{base}/ns/ranks/ofrep/v1/evaluate/flags/{}",
                case["key"].as_str().unwrap()
            );
            let body = context(case["user"].as_str());
            let client = &client;
            async move { post(client, &url, &body, &[]).await }
        }))
        .await;
        for (case, (status, _, answer)) in chunk.iter().zip(answers) {
            let rank = case["rank"].as_u64().unwrap();
            if status != 200
                || answer["metadata"]["rank"] != rank
                || answer["value"] != (rank < 5000)
            {
                rank_failures.push(format!(
                    "{} {:?}: {status} {answer}, want rank {rank}",
                    case["key"],
                    case["user"]
                        .as_str()
                        .map(|u| u.chars().take(20).collect::<String>())
                ));
            }
        }
    }
    assert!(
        rank_failures.is_empty(),
        "{} of {} ranks differ:\n{}",
        rank_failures.len(),
        bucketing.len(),
        rank_failures.join("\n")
    );
    println!(
        "relay answered {} evaluation vectors, {} bulk users and {} bucketing ranks as the SDK",
        cases.len(),
        users.len(),
        bucketing.len()
    );
    relay.shutdown().await.unwrap();
}

fn ofrep_status(answer: &Value) -> u16 {
    match answer["errorCode"].as_str() {
        None => 200,
        Some("FLAG_NOT_FOUND") => 404,
        Some(_) => 400,
    }
}

const DOC: &str = r#"{"schemaVersion":1,"flags":{
  "checkout":{"key":"checkout","enabled":true,"percent":30,"phase":"Progressing","generation":3},
  "banner":{"key":"banner","enabled":true,"percent":100,"phase":"Complete","generation":1},
  "ab":{"key":"ab","enabled":true,"percent":100,"variants":[{"name":"control","weight":50},{"name":"treatment","weight":50}]}}}"#;

fn flags_file(directory: &Path, document: &str) -> std::path::PathBuf {
    let path = directory.join("flags.json");
    std::fs::write(&path, document).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_error_code_and_status() {
    let directory = tempfile::tempdir().unwrap();
    let path = flags_file(directory.path(), DOC);
    let (relay, base) = start(&[
        "--flags-file",
        &format!("shop={}", path.display()),
        "--max-body-bytes",
        "1024",
        "--max-context-attributes",
        "5",
    ])
    .await;
    let client = client();
    let single = |key: &str| format!("{base}/ns/shop/ofrep/v1/evaluate/flags/{key}");
    let user = r#"{"context":{"targetingKey":"user-1"}}"#;

    let (status, _, body) = post(&client, &single("nope"), user, &[]).await;
    assert_eq!(
        (status, body["errorCode"].as_str(), body["key"].as_str()),
        (404, Some("FLAG_NOT_FOUND"), Some("nope"))
    );
    let (status, _, body) = post(&client, &single("checkout"), r#"{"context":{}}"#, &[]).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (400, Some("TARGETING_KEY_MISSING"))
    );
    let (status, _, body) = post(&client, &single("banner"), "{}", &[]).await;
    assert_eq!(
        (status, body["value"].clone(), body["reason"].clone()),
        (200, json!(true), json!("STATIC"))
    );
    for bad in [
        r#"{"context":"u"}"#,
        r#"{"context":{"targetingKey":7}}"#,
        r#"{"context":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}}"#,
    ] {
        let (status, _, body) = post(&client, &single("checkout"), bad, &[]).await;
        assert_eq!(
            (status, body["errorCode"].as_str()),
            (400, Some("INVALID_CONTEXT")),
            "{bad}: {body}"
        );
        assert!(
            body["errorDetails"].as_str().unwrap().contains("context"),
            "{body}"
        );
    }
    let long = format!(r#"{{"context":{{"targetingKey":"{}"}}}}"#, "x".repeat(1100));
    let (status, _, _) = post(&client, &single("checkout"), &long, &[]).await;
    assert_eq!(status, 413, "a body over --max-body-bytes");
    let (status, _, body) = post(&client, &single("checkout"), "{oops", &[]).await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (400, Some("PARSE_ERROR"))
    );
    let (status, _, body) = post(
        &client,
        &format!("{base}/ns/shop/ofrep/v1/evaluate/flags"),
        "[]",
        &[],
    )
    .await;
    assert_eq!(
        (status, body["errorCode"].as_str()),
        (400, Some("PARSE_ERROR"))
    );
    assert!(
        body.get("key").is_none(),
        "a bulk failure names no flag: {body}"
    );
    let (status, _, body) = post(
        &client,
        &format!("{base}/ns/other/ofrep/v1/evaluate/flags"),
        user,
        &[],
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        body["errorDetails"]
            .as_str()
            .unwrap()
            .contains("namespace \"other\""),
        "{body}"
    );

    let (status, _, body) = post(&client, &single("ab"), user, &[]).await;
    assert_eq!((status, body["reason"].as_str()), (200, Some("SPLIT")));
    assert!(
        ["control", "treatment"].contains(&body["value"].as_str().unwrap()),
        "{body}"
    );

    // Answers are counted by reason and code.
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"rollgate_relay_evaluations_total{namespace="shop",reason="FLAG_NOT_FOUND"} 1"#,
        r#"rollgate_relay_evaluations_total{namespace="shop",reason="STATIC"} 1"#,
        r#"rollgate_relay_requests_total{code="413",route="/ns/{namespace}/ofrep/v1/evaluate/flags/{key}"} 1"#,
        r#"rollgate_relay_source_loaded{namespace="shop",source="file"} 1"#,
        r#"rollgate_relay_source_watches{namespace="shop"} 0"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_etag_revalidates_per_context_and_document() {
    let directory = tempfile::tempdir().unwrap();
    let path = flags_file(directory.path(), DOC);
    let (relay, base) = start(&["--flags-file", &format!("shop={}", path.display())]).await;
    let client = client();
    let bulk = format!("{base}/ns/shop/ofrep/v1/evaluate/flags");
    let alice = r#"{"context":{"targetingKey":"alice"}}"#;
    let bob = r#"{"context":{"targetingKey":"bob"}}"#;

    let (status, headers, first) = post(&client, &bulk, alice, &[]).await;
    assert_eq!(status, 200);
    let etag = headers["etag"].to_str().unwrap().to_owned();
    assert!(
        etag.starts_with('"') && !etag.starts_with("W/"),
        "a strong validator: {etag}"
    );
    let (status, headers, body) = post(&client, &bulk, alice, &[("if-none-match", &etag)]).await;
    assert_eq!(
        (status, body),
        (304, Value::Null),
        "same context, same document: 304, no body"
    );
    assert_eq!(headers["etag"].to_str().unwrap(), etag);

    let (status, headers, _) = post(&client, &bulk, bob, &[("if-none-match", &etag)]).await;
    assert_eq!(status, 200, "another user never gets alice's 304");
    assert_ne!(headers["etag"].to_str().unwrap(), etag);
    let (status, _, _) = post(
        &client,
        &bulk,
        r#"{"context":{"targetingKey":"alice","plan":"pro"}}"#,
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(status, 200, "any other attribute is another context");

    write_document(&path, &DOC.replace(r#""percent":30"#, r#""percent":31"#));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, headers, body) =
            post(&client, &bulk, alice, &[("if-none-match", &etag)]).await;
        if status == 200 {
            assert_ne!(headers["etag"].to_str().unwrap(), etag);
            assert_ne!(
                body["metadata"]["contentHash"],
                first["metadata"]["contentHash"]
            );
            assert_eq!(body["metadata"]["generation"], 2);
            break;
        }
        assert_eq!(status, 304);
        assert!(
            Instant::now() < deadline,
            "the document change never changed the ETag"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    relay.shutdown().await.unwrap();
}

/// Reads an SSE response until a `data:` line, returning it; `None` if the stream ends.
async fn next_data(response: &mut reqwest::Response, buffer: &mut String) -> Option<String> {
    loop {
        if let Some(at) = buffer.find("\n\n") {
            let event: String = buffer.drain(..at + 2).collect();
            if let Some(data) = event.lines().find_map(|line| line.strip_prefix("data:")) {
                return Some(data.trim().to_owned());
            }
            continue;
        }
        let chunk = response.chunk().await.ok()??;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
}

/// Reads until the opening comment: the stream is subscribed from then on.
async fn opened(response: &mut reqwest::Response, buffer: &mut String) {
    while !buffer.contains(": rollgate relay") {
        let chunk = response.chunk().await.unwrap().unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }
    buffer.clear();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_sends_refetch_evaluation_when_the_file_changes() {
    let directory = tempfile::tempdir().unwrap();
    let path = flags_file(directory.path(), DOC);
    let (relay, base) = start(&[
        "--flags-file",
        &format!("shop={}", path.display()),
        "--sse-keep-alive",
        "1s",
    ])
    .await;
    let client = client();
    let url = format!("{base}/ns/shop/ofrep/v1/events");

    let mut streams = Vec::new();
    for _ in 0..3 {
        let mut response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        let mut buffer = String::new();
        opened(&mut response, &mut buffer).await;
        streams.push((response, buffer));
    }
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"rollgate_relay_sse_clients{namespace="shop"} 3"#),
        "{metrics}"
    );

    let mut latencies = Vec::new();
    for round in 0..5 {
        let changed = DOC.replace(r#""percent":30"#, &format!(r#""percent":{}"#, 40 + round));
        let written = Instant::now();
        write_document(&path, &changed);
        for (response, buffer) in &mut streams {
            let data = tokio::time::timeout(Duration::from_secs(10), next_data(response, buffer))
                .await
                .expect("no refetchEvaluation within 10 s")
                .expect("the stream ended");
            latencies.push(written.elapsed());
            let data: Value = serde_json::from_str(&data).unwrap();
            assert_eq!(data["type"], "refetchEvaluation", "{data}");
            assert!(data["etag"].as_str().unwrap().starts_with('"'));
            assert!(data["lastModified"].as_u64().unwrap() > 1_700_000_000);
        }
    }
    latencies.sort();
    println!(
        "LATENCY relay_file_change_to_sse_ms min {:.1} median {:.1} max {:.1} ({} events, 3 clients, 5 changes)",
        latencies[0].as_secs_f64() * 1e3,
        latencies[latencies.len() / 2].as_secs_f64() * 1e3,
        latencies[latencies.len() - 1].as_secs_f64() * 1e3,
        latencies.len()
    );
    assert!(
        latencies[latencies.len() - 1] < Duration::from_secs(6),
        "{latencies:?}"
    );

    // Keep-alive comments arrive while nothing changes.
    let (response, buffer) = &mut streams[0];
    let deadline = Instant::now() + Duration::from_secs(5);
    while !buffer.contains(":\n") && !buffer.contains(": \n") {
        assert!(
            Instant::now() < deadline,
            "no keep-alive in 5 s: {buffer:?}"
        );
        let chunk = tokio::time::timeout(Duration::from_secs(5), response.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        buffer.push_str(&String::from_utf8_lossy(&chunk));
    }

    // A reconnecting client whose Last-Event-ID names an older document is told at once.
    let mut late = client
        .get(&url)
        .header("last-event-id", "0123")
        .send()
        .await
        .unwrap();
    let mut buffer = String::new();
    let data = tokio::time::timeout(Duration::from_secs(5), next_data(&mut late, &mut buffer))
        .await
        .unwrap()
        .unwrap();
    assert!(data.contains("refetchEvaluation"));
    drop(streams);
    drop(late);
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_scope_namespaces_reload_and_open_the_stream_by_ticket() {
    let directory = tempfile::tempdir().unwrap();
    let path = flags_file(directory.path(), DOC);
    let tokens = directory.path().join("tokens");
    std::fs::write(
        &tokens,
        "# tokens\nadmin-token-0123456789\nshop-token-0123456789 shop\n",
    )
    .unwrap();
    let (relay, base) = start(&[
        "--flags-file",
        &format!("shop={}", path.display()),
        "--flags-file",
        &format!("web={}", path.display()),
        "--tokens-file",
        tokens.to_str().unwrap(),
    ])
    .await;
    let client = client();
    let url = |namespace: &str| format!("{base}/ns/{namespace}/ofrep/v1/evaluate/flags/banner");
    let bearer = |token: &str| format!("Bearer {token}");
    let user = r#"{"context":{"targetingKey":"u"}}"#;

    let (status, headers, _) = post(&client, &url("shop"), user, &[]).await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let (status, headers, _) = post(
        &client,
        &url("shop"),
        user,
        &[("authorization", &bearer("shop-token-012345678X"))],
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        headers["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let (status, _, _) = post(
        &client,
        &url("web"),
        user,
        &[("authorization", &bearer("shop-token-0123456789"))],
    )
    .await;
    assert_eq!(status, 403, "a valid token outside its namespaces");
    let (status, _, _) = post(
        &client,
        &url("shop"),
        user,
        &[("authorization", &bearer("shop-token-0123456789"))],
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = post(
        &client,
        &url("web"),
        user,
        &[("authorization", &bearer("admin-token-0123456789"))],
    )
    .await;
    assert_eq!(status, 200);

    // The bulk answer's event stream carries a ticket, since EventSource sends no headers.
    let (status, _, body) = post(
        &client,
        &format!("{base}/ns/shop/ofrep/v1/evaluate/flags"),
        user,
        &[("authorization", &bearer("shop-token-0123456789"))],
    )
    .await;
    assert_eq!(status, 200);
    let uri = body["eventStreams"][0]["endpoint"]["requestUri"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(uri.starts_with("/ns/shop/ofrep/v1/events?access="), "{uri}");
    assert!(!uri.contains("shop-token"), "{uri}");
    let stream = client.get(format!("{base}{uri}")).send().await.unwrap();
    assert_eq!(stream.status(), 200);
    drop(stream);
    let bare = client
        .get(format!("{base}/ns/shop/ofrep/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(bare.status(), 401);
    let other = client
        .get(format!("{base}{}", uri.replace("/ns/shop/", "/ns/web/")))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 401, "a ticket opens its own namespace only");

    // A new tokens file takes effect without a restart; the old tokens and tickets stop.
    std::fs::write(&tokens, "rotated-token-0123456789\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = post(
            &client,
            &url("shop"),
            user,
            &[("authorization", &bearer("rotated-token-0123456789"))],
        )
        .await;
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the tokens file was never reloaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, _, _) = post(
        &client,
        &url("shop"),
        user,
        &[("authorization", &bearer("admin-token-0123456789"))],
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        client
            .get(format!("{base}{uri}"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    // A broken file keeps the last good tokens.
    std::fs::write(&tokens, "short\n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (status, _, _) = post(
        &client,
        &url("shop"),
        user,
        &[("authorization", &bearer("rotated-token-0123456789"))],
    )
    .await;
    assert_eq!(status, 200);
    let metrics = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("rollgate_relay_tokens_reload_errors_total 1"),
        "{metrics}"
    );
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_cors_and_readiness() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("later.json");
    let (relay, base) = start(&[
        "--flags-file",
        &format!("shop={}", path.display()),
        "--rate-limit",
        "4/m",
        "--cors-origin",
        "https://app.example",
    ])
    .await;
    let client = client();
    let single = format!("{base}/ns/shop/ofrep/v1/evaluate/flags/banner");
    let user = r#"{"context":{"targetingKey":"u"}}"#;

    // The source has not loaded: not ready, and evaluation says so.
    let ready = client.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    assert!(ready.text().await.unwrap().contains("shop"));
    let (status, headers, _) = post(&client, &single, user, &[]).await;
    assert_eq!(status, 503);
    assert!(headers.contains_key("retry-after"));
    std::fs::write(&path, DOC).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while client
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        != 200
    {
        assert!(
            Instant::now() < deadline,
            "never ready after the file appeared"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // CORS: a preflight from an allowed origin, and none for another origin.
    let preflight = client
        .request(reqwest::Method::OPTIONS, &single)
        .header("origin", "https://app.example")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,if-none-match",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_owned();
    for name in ["authorization", "content-type", "if-none-match"] {
        assert!(allowed.contains(name), "{allowed}");
    }
    let foreign = client
        .request(reqwest::Method::OPTIONS, &single)
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(
        !foreign
            .headers()
            .contains_key("access-control-allow-origin")
    );

    // The request limit: 4 a minute here (the preflights above were not counted: CORS
    // answers them before any route), then 429 with Retry-After, and the CORS headers stay so
    // a browser can read it.
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let (status, headers, _) =
            post(&client, &single, user, &[("origin", "https://app.example")]).await;
        if status == 200 {
            let exposed = headers["access-control-expose-headers"].to_str().unwrap();
            assert!(exposed.contains("etag"), "{exposed}");
        }
        if status == 429 {
            assert_eq!(
                headers["access-control-allow-origin"],
                "https://app.example"
            );
            retry_after = headers
                .get("retry-after")
                .map(|value| value.to_str().unwrap().parse::<u64>().unwrap());
        }
        statuses.push(status);
    }
    // The 503 above counted once.
    assert_eq!(statuses, [200, 200, 200, 429, 429, 429]);
    let retry_after = retry_after.unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_when_a_certificate_is_given() {
    let directory = tempfile::tempdir().unwrap();
    let path = flags_file(directory.path(), DOC);
    let (cert, key) = (
        directory.path().join("tls.crt"),
        directory.path().join("tls.key"),
    );
    // A self-signed certificate for 127.0.0.1 from Debian's openssl.
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "1",
        ])
        .args([
            "-subj",
            "/CN=rollgate-relay-test",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .args([
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            "extendedKeyUsage=serverAuth",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl (Debian package openssl) makes the test certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let (relay, _) = start(&[
        "--flags-file",
        &format!("shop={}", path.display()),
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ])
    .await;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let pem = std::fs::read(&cert).unwrap();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&pem).unwrap()])
        .build()
        .unwrap();
    let base = format!("https://{}", relay.local_addr);
    let (status, _, body) = post(
        &client,
        &format!("{base}/ns/shop/ofrep/v1/evaluate/flags/banner"),
        "{}",
        &[],
    )
    .await;
    assert_eq!((status, body["value"].clone()), (200, json!(true)));
    let plain = reqwest::Client::new()
        .post(format!(
            "http://{}/ns/shop/ofrep/v1/evaluate/flags/banner",
            relay.local_addr
        ))
        .body("{}")
        .send()
        .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP on the TLS port"
    );
    relay.shutdown().await.unwrap();
}

/// The binary: `--listen 127.0.0.1:0` and `--port-file` tell a test where it listens; SIGTERM
/// stops it cleanly; a bad setting exits 2 naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_reports_its_port_and_stops_on_sigterm() {
    let directory = tempfile::tempdir().unwrap();
    let path = flags_file(directory.path(), DOC);
    let port_file = directory.path().join("port");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args(["relay", "--listen", "127.0.0.1:0", "--flags-file"])
        .arg(format!("shop={}", path.display()))
        .arg("--port-file")
        .arg(&port_file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let port = loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|text| text.trim().parse::<u16>().ok())
        {
            break port;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no port file in 20 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let client = client();
    let (status, _, body) = post(
        &client,
        &format!("http://127.0.0.1:{port}/ns/shop/ofrep/v1/evaluate/flags/banner"),
        "{}",
        &[],
    )
    .await;
    let answered = (status, body["value"].clone());
    // Stop it by its PID, then check what it answered.
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let exit = child.wait().unwrap();
    assert_eq!(answered, (200, json!(true)));
    assert!(exit.success(), "SIGTERM is a clean stop: {exit:?}");

    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_rollgate"))
        .args([
            "relay",
            "--namespace",
            "Not_A_Namespace",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Not_A_Namespace"));
}
