//! Cohort metrics: request scopes record what `Flags` answered, `CohortMetrics` counts it,
//! and the tower layer does both around real services and a real axum server on 127.0.0.1.
#![cfg(feature = "metrics")]

use std::convert::Infallible;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use http::{Request, Response};
use prometheus::{Encoder, Registry, TextEncoder};
use rollgate_sdk::metrics::{DEFAULT_DURATION_BUCKETS, REQUEST_DURATION_SECONDS, REQUESTS_TOTAL};
use rollgate_sdk::{
    CohortMetrics, CohortMetricsLayer, Context, Flags, MetricsError, Outcome, Reason, RequestScope,
};
use tower::{BoxError, Layer, ServiceExt, service_fn};

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

fn flags() -> Flags {
    Flags::from_json(DOC.as_bytes()).unwrap()
}

fn cohorts(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(flag, cohort)| (flag.to_string(), cohort.to_string()))
        .collect()
}

fn scrape(registry: &Registry) -> String {
    let mut text = Vec::new();
    TextEncoder::new()
        .encode(&registry.gather(), &mut text)
        .unwrap();
    String::from_utf8(text).unwrap()
}

/// The sample lines of `metric` (not its `# HELP`/`# TYPE`), sorted.
fn samples<'a>(text: &'a str, metric: &str) -> Vec<&'a str> {
    let mut lines: Vec<&str> = text
        .lines()
        .filter(|line| {
            line.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
        })
        .collect();
    lines.sort_unstable();
    lines
}

fn requests_line(flag: &str, cohort: &str, outcome: &str, count: u64) -> String {
    format!(
        r#"rollgate_flag_requests_total{{cohort="{cohort}",flag="{flag}",outcome="{outcome}"}} {count}"#
    )
}

#[test]
fn cohorts_are_the_variant_else_on_or_off() {
    let flags = flags();
    let button = flags.variant("button", Some("u1")).unwrap();
    let scope = RequestScope::new();
    scope.run_sync(|| {
        assert!(flags.is_enabled("checkout", Some("u1")));
        assert!(!flags.is_enabled("killed", Some("u1")));
        // `is_enabled` of a flag with variants still records the variant.
        assert!(flags.is_enabled("button", Some("u1")));
        assert_eq!(flags.evaluate("beta", Some("u1")).reason, Reason::Percent);
        // On, but outside the experiment's coverage: no variant.
        assert_eq!(flags.variant("exp", Some("u1")), None);
    });
    assert_eq!(
        scope.cohorts(),
        cohorts(&[
            ("checkout", "on"),
            ("killed", "off"),
            ("button", &button),
            ("beta", "off"),
            ("exp", "on"),
        ])
    );
    assert_eq!(scope.cohort("button").as_deref(), Some(button.as_str()));
    assert_eq!(scope.cohort("ramp"), None);
}

#[test]
fn every_way_of_evaluating_through_flags_is_recorded() {
    const USER: Option<&str> = Some("u1");
    let flags = flags();
    let button = flags.variant("button", USER).unwrap();
    // Each asks whether `button` is on for `USER`.
    type AskButton = fn(&Flags) -> bool;
    let ways: [(&str, AskButton); 8] = [
        ("is_enabled", |flags| flags.is_enabled("button", USER)),
        ("variant", |flags| flags.variant("button", USER).is_some()),
        ("evaluate", |flags| flags.evaluate("button", USER).enabled),
        ("is_enabled_many", |flags| {
            flags.is_enabled_many(["button"], USER)[0]
        }),
        ("evaluate_many", |flags| {
            flags.evaluate_many(["button"], USER)[0].enabled
        }),
        ("snapshot().is_enabled", |flags| {
            flags.snapshot().is_enabled("button", USER)
        }),
        ("snapshot().evaluate_many", |flags| {
            flags.snapshot().evaluate_many(["button"], USER)[0].enabled
        }),
        ("snapshot_arc().variant", |flags| {
            flags.snapshot_arc().variant("button", USER).is_some()
        }),
    ];
    for (way, is_on) in ways {
        let scope = RequestScope::new();
        assert!(scope.run_sync(|| is_on(&flags)), "{way}");
        assert_eq!(scope.cohorts(), cohorts(&[("button", &button)]), "{way}");
    }
}

#[test]
fn the_first_answer_for_a_flag_counts() {
    let flags = flags();
    let scope = RequestScope::new();
    scope.run_sync(|| {
        assert!(flags.is_enabled("beta", Some("qa-1")));
        assert!(!flags.is_enabled("beta", Some("u2")));
        assert!(!flags.is_enabled_many(["beta"], None)[0]);
    });
    assert_eq!(scope.cohorts(), cohorts(&[("beta", "on")]));

    let scope = RequestScope::new();
    scope.run_sync(|| {
        assert!(!flags.is_enabled("beta", Some("u2")));
        assert!(flags.is_enabled("beta", Some("qa-1")));
    });
    assert_eq!(scope.cohorts(), cohorts(&[("beta", "off")]));
}

#[test]
fn keys_that_are_not_in_the_document_are_not_recorded() {
    let flags = flags();
    let scope = RequestScope::new();
    scope.run_sync(|| {
        assert!(!flags.is_enabled("no-such-flag", Some("u1")));
        assert_eq!(
            flags.evaluate("user-supplied-key", None).reason,
            Reason::Missing
        );
    });
    assert!(scope.cohorts().is_empty());

    let registry = Registry::new();
    let metrics = CohortMetrics::register(&registry).unwrap();
    metrics.finish(&scope, Outcome::Error, Duration::from_millis(3));
    assert!(samples(&scrape(&registry), REQUESTS_TOTAL).is_empty());
}

/// A ramp at 50% whose rules turn it on for the enterprise plan, off in DE, and to half of
/// the beta testers (a rule percent needs a user id).
const TARGETED: &str = r#"{"schemaVersion":2,"flags":{"ramp":{"key":"ramp","enabled":true,"percent":50,
  "targeting":[
    {"name":"legal-hold","conditions":[{"attribute":"country","operator":"In","values":["DE"]}],
     "serve":{"enabled":false}},
    {"name":"enterprise","conditions":[{"attribute":"plan","operator":"In","values":["enterprise"]}],
     "serve":{"enabled":true}},
    {"name":"beta","conditions":[{"attribute":"beta","operator":"In","values":["true"]}],
     "serve":{"percent":50}}]}}}"#;

#[test]
fn answers_a_rule_decided_are_not_counted() {
    let flags = Flags::from_json(TARGETED.as_bytes()).unwrap();
    let registry = Registry::new();
    let metrics = CohortMetrics::register(&registry).unwrap();
    let by_rule = [
        Context::new("u1").with("plan", "enterprise"),
        Context::new("u1").with("country", "DE"),
        Context::new("u1").with("beta", true),
        Context::anonymous().with("beta", true),
    ];
    for context in &by_rule {
        let scope = RequestScope::new();
        let answer = scope.run_sync(|| flags.evaluate_with("ramp", context));
        assert!(answer.rule.is_some(), "{answer:?}");
        assert!(scope.cohorts().is_empty(), "{context:?} was recorded");
        metrics.finish(&scope, Outcome::Ok, Duration::from_millis(1));
    }
    assert!(samples(&scrape(&registry), REQUESTS_TOTAL).is_empty());

    // The same flag, no rule matching: the fallthrough is counted, and a rule's answer later
    // in the same request changes nothing.
    let scope = RequestScope::new();
    let plain = Context::new("u1").with("plan", "free");
    let fallthrough = scope.run_sync(|| {
        let answer = flags.evaluate_with("ramp", &plain);
        assert!(flags.is_enabled_with("ramp", &by_rule[0]));
        answer
    });
    assert_eq!(fallthrough.reason, Reason::Percent);
    let cohort = if fallthrough.enabled { "on" } else { "off" };
    assert_eq!(scope.cohorts(), cohorts(&[("ramp", cohort)]));
    metrics.finish(&scope, Outcome::Ok, Duration::from_millis(1));
    assert_eq!(
        samples(&scrape(&registry), REQUESTS_TOTAL),
        [requests_line("ramp", cohort, "ok", 1)]
    );
}

#[tokio::test]
async fn nothing_is_recorded_outside_a_scope() {
    let flags = flags();
    assert!(RequestScope::current().is_none());
    let scope = RequestScope::new();
    // Before, after and beside the scope.
    assert!(flags.is_enabled("checkout", None));
    scope
        .run(async {
            assert!(RequestScope::current().is_some());
            assert!(!flags.is_enabled("killed", None));
            // A task spawned from the request starts without its scope…
            let plain = flags.clone();
            tokio::spawn(async move { plain.is_enabled("beta", Some("qa-1")) })
                .await
                .unwrap();
            // …unless the scope is handed over.
            let handed = flags.clone();
            let current = RequestScope::current().unwrap();
            tokio::spawn(current.run(async move { handed.is_enabled("ramp", None) }))
                .await
                .unwrap();
        })
        .await;
    assert!(flags.is_enabled("exp", Some("u1")));
    let other = RequestScope::new();
    other.run_sync(|| assert!(!flags.is_enabled("killed", Some("u9"))));

    assert_eq!(
        scope.cohorts(),
        cohorts(&[("killed", "off"), ("ramp", "off")])
    );
    assert_eq!(other.cohorts(), cohorts(&[("killed", "off")]));
    assert!(RequestScope::current().is_none());
}

#[tokio::test]
async fn the_openfeature_provider_is_recorded() {
    use open_feature::EvaluationContext;
    use open_feature::provider::FeatureProvider;
    use rollgate_sdk::openfeature::RollgateProvider;

    let flags = flags();
    let button = flags.variant("button", Some("u1")).unwrap();
    let provider = RollgateProvider::new(flags);
    let context = EvaluationContext::default().with_targeting_key("u1");
    let scope = RequestScope::new();
    scope
        .run(async {
            let killed = provider.resolve_bool_value("killed", &context).await;
            assert!(!killed.unwrap().value);
            let color = provider.resolve_string_value("button", &context).await;
            assert_eq!(color.unwrap().value, button);
            assert!(provider.resolve_bool_value("nope", &context).await.is_err());
        })
        .await;
    assert_eq!(
        scope.cohorts(),
        cohorts(&[("killed", "off"), ("button", &button)])
    );
}

#[test]
fn finish_counts_one_request_per_flag_with_its_cohort_and_outcome() {
    let flags = flags();
    let registry = Registry::new();
    let metrics = CohortMetrics::builder()
        .duration_buckets(vec![0.01, 0.1])
        .register(&registry)
        .unwrap();
    for (user, outcome, millis) in [
        ("qa-1", Outcome::Ok, 5),
        ("qa-1", Outcome::Error, 50),
        ("u2", Outcome::Ok, 500),
    ] {
        let scope = RequestScope::new();
        scope.run_sync(|| {
            flags.is_enabled("beta", Some(user));
            flags.is_enabled("checkout", Some(user));
        });
        metrics.finish(&scope, outcome, Duration::from_millis(millis));
    }
    let text = scrape(&registry);
    assert_eq!(
        samples(&text, REQUESTS_TOTAL),
        [
            requests_line("beta", "off", "ok", 1),
            requests_line("beta", "on", "error", 1),
            requests_line("beta", "on", "ok", 1),
            requests_line("checkout", "on", "error", 1),
            requests_line("checkout", "on", "ok", 2),
        ]
    );
    let duration = samples(&text, &format!("{REQUEST_DURATION_SECONDS}_bucket"));
    assert!(
        duration.contains(
            &r#"rollgate_flag_request_duration_seconds_bucket{cohort="on",flag="checkout",le="0.01"} 1"#
        ),
        "{duration:#?}"
    );
    assert!(duration.contains(
        &r#"rollgate_flag_request_duration_seconds_bucket{cohort="on",flag="checkout",le="0.1"} 2"#
    ));
    assert!(duration.contains(
        &r#"rollgate_flag_request_duration_seconds_bucket{cohort="on",flag="checkout",le="+Inf"} 3"#
    ));
    assert!(duration.contains(
        &r#"rollgate_flag_request_duration_seconds_bucket{cohort="off",flag="beta",le="0.1"} 0"#
    ));
    assert_eq!(
        duration.len(),
        3 * 3,
        "three (flag, cohort) pairs, three buckets each"
    );
}

#[test]
fn a_request_is_counted_once_and_records_nothing_after() {
    let flags = flags();
    let registry = Registry::new();
    let metrics = CohortMetrics::register(&registry).unwrap();
    let scope = RequestScope::new();
    scope.run_sync(|| flags.is_enabled("checkout", None));
    assert!(!scope.is_finished());
    metrics.finish(&scope, Outcome::Ok, Duration::ZERO);
    assert!(scope.is_finished());
    // A task that outlived its request evaluates again; the request is finished again.
    scope.run_sync(|| flags.is_enabled("killed", None));
    metrics.finish(&scope, Outcome::Error, Duration::ZERO);
    assert_eq!(scope.cohorts(), cohorts(&[("checkout", "on")]));
    assert_eq!(
        samples(&scrape(&registry), REQUESTS_TOTAL),
        [requests_line("checkout", "on", "ok", 1)]
    );
}

#[test]
fn registration_errors_name_the_metric_and_leave_the_registry_as_it_was() {
    let registry = Registry::new();
    let error = CohortMetrics::builder()
        .duration_buckets(vec![0.1, 0.05])
        .register(&registry)
        .unwrap_err();
    assert!(matches!(error, MetricsError::Buckets { .. }));
    assert_eq!(
        error.to_string(),
        "rollgate_flag_request_duration_seconds buckets must be increasing numbers, got [0.1, 0.05]"
    );
    assert_eq!(error.category(), "buckets");

    // Another histogram of that name is already there.
    let taken = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new(
        REQUEST_DURATION_SECONDS,
        "someone else's",
    ))
    .unwrap();
    registry.register(Box::new(taken)).unwrap();
    let error = CohortMetrics::builder()
        .with_duration()
        .register(&registry)
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("registering metric rollgate_flag_request_duration_seconds: "),
        "{error}"
    );
    // The counter it registered first was taken back out, so this succeeds.
    CohortMetrics::register(&registry).unwrap();
    assert!(matches!(
        CohortMetrics::register(&registry),
        Err(MetricsError::Register {
            metric: REQUESTS_TOTAL,
            ..
        })
    ));
    assert_eq!(DEFAULT_DURATION_BUCKETS.len(), 11);
}

/// A service that evaluates `checkout` while it is called and `beta` in its future, then
/// answers by path: `/ok` 200, `/missing` 404, `/fail` 500, `/broken` a failed future.
fn shop(
    flags: Flags,
) -> impl tower::Service<Request<String>, Response = Response<String>, Error = BoxError> + Clone {
    service_fn(move |request: Request<String>| {
        let user = request
            .headers()
            .get("x-user")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        flags.is_enabled("checkout", user.as_deref());
        let flags = flags.clone();
        async move {
            tokio::task::yield_now().await;
            flags.is_enabled("beta", user.as_deref());
            let status = match request.uri().path() {
                "/ok" => StatusCode::OK,
                "/missing" => StatusCode::NOT_FOUND,
                "/fail" => StatusCode::INTERNAL_SERVER_ERROR,
                _ => return Err(BoxError::from("backend down")),
            };
            Ok(Response::builder().status(status).body(String::new())?)
        }
    })
}

fn request(path: &str, user: &str) -> Request<String> {
    Request::get(path)
        .header("x-user", user)
        .body(String::new())
        .unwrap()
}

#[tokio::test]
async fn the_layer_counts_ok_server_errors_and_failed_futures() {
    let registry = Registry::new();
    let metrics = CohortMetrics::register(&registry).unwrap();
    let service = CohortMetricsLayer::new(metrics).layer(shop(flags()));

    for (path, user, status) in [
        ("/ok", "qa-1", Some(200)),
        ("/ok", "u2", Some(200)),
        ("/missing", "u2", Some(404)),
        ("/fail", "qa-1", Some(500)),
        ("/broken", "u2", None),
    ] {
        let response = service.clone().oneshot(request(path, user)).await;
        assert_eq!(
            response
                .as_ref()
                .ok()
                .map(|response| response.status().as_u16()),
            status,
            "{path}"
        );
    }
    assert_eq!(
        samples(&scrape(&registry), REQUESTS_TOTAL),
        [
            requests_line("beta", "off", "error", 1),
            requests_line("beta", "off", "ok", 2),
            requests_line("beta", "on", "error", 1),
            requests_line("beta", "on", "ok", 1),
            requests_line("checkout", "on", "error", 2),
            requests_line("checkout", "on", "ok", 3),
        ]
    );
}

#[tokio::test]
async fn a_request_that_evaluates_no_flag_is_not_counted() {
    let registry = Registry::new();
    let metrics = CohortMetrics::builder()
        .with_duration()
        .register(&registry)
        .unwrap();
    let service = CohortMetricsLayer::new(metrics).layer(service_fn(|_: Request<()>| async {
        Ok::<_, Infallible>(Response::new(()))
    }));
    service.oneshot(Request::new(())).await.unwrap();
    let text = scrape(&registry);
    assert!(samples(&text, REQUESTS_TOTAL).is_empty(), "{text}");
    assert!(
        !text.contains("rollgate_flag_request_duration_seconds_count"),
        "{text}"
    );
}

/// Enough users that `ramp`, at 50%, is on for some and off for others (checked below).
fn users(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("user-{i}")).collect()
}

/// What `/checkout` of [`serve`] answers `user`, from evaluations outside any scope.
fn expected_body(flags: &Flags, user: &str) -> String {
    let ramp = if flags.is_enabled("ramp", Some(user)) {
        "on"
    } else {
        "off"
    };
    let button = flags.variant("button", Some(user)).unwrap();
    format!("ramp={ramp},button={button}")
}

/// `/checkout` evaluates `ramp` and `button` across awaits and fails with 500 when the ramp
/// is on for the user: a treatment that breaks. It answers with the scope it saw.
async fn checkout(State(flags): State<Flags>, headers: HeaderMap) -> (StatusCode, String) {
    let user = headers
        .get("x-user")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let new_checkout = flags.is_enabled("ramp", Some(&user));
    tokio::task::yield_now().await;
    flags.variant("button", Some(&user));
    tokio::time::sleep(Duration::from_millis(2)).await;
    // Asked again for someone else: the request's first answer stays its cohort.
    flags.is_enabled("ramp", Some(if new_checkout { "u-off" } else { "u-on" }));
    let scope = RequestScope::current().unwrap();
    let body = scope
        .cohorts()
        .iter()
        .map(|(flag, cohort)| format!("{flag}={cohort}"))
        .collect::<Vec<_>>()
        .join(",");
    let status = if new_checkout {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    (status, body)
}

/// An axum server on 127.0.0.1 with the layer on `/checkout` and the registry on `/metrics`.
async fn serve(
    flags: Flags,
    registry: Registry,
    metrics: CohortMetrics,
) -> (String, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route("/checkout", get(checkout))
        .with_state(flags)
        .layer(CohortMetricsLayer::new(metrics))
        // Added after the layer, so not wrapped by it.
        .route("/metrics", get(move || async move { scrape(&registry) }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), server)
}

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // A proxy from the environment must not see loopback requests.
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// Expected `rollgate_flag_requests_total` lines after each of `users` asked `/checkout`.
fn expected_requests(flags: &Flags, users: &[String]) -> Vec<String> {
    let mut counts = std::collections::BTreeMap::<(&str, String, &str), u64>::new();
    for user in users {
        let ramp_on = flags.is_enabled("ramp", Some(user));
        let outcome = if ramp_on { "error" } else { "ok" };
        let ramp = if ramp_on { "on" } else { "off" };
        let button = flags.variant("button", Some(user)).unwrap();
        *counts.entry(("ramp", ramp.into(), outcome)).or_default() += 1;
        *counts.entry(("button", button, outcome)).or_default() += 1;
    }
    let mut lines: Vec<String> = counts
        .into_iter()
        .map(|((flag, cohort, outcome), count)| requests_line(flag, &cohort, outcome, count))
        .collect();
    lines.sort_unstable();
    lines
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_axum_server_counts_each_cohort_and_serves_exact_lines() {
    let flags = flags();
    let registry = Registry::new();
    // Every request takes over 1 ms (the handler sleeps 2 ms) and, on any machine, under 60 s.
    let metrics = CohortMetrics::builder()
        .duration_buckets(vec![0.001, 60.0])
        .register(&registry)
        .unwrap();
    let (base, server) = serve(flags.clone(), registry, metrics).await;
    let client = client();
    let users = users(8);
    for user in &users {
        let response = client
            .get(format!("{base}/checkout"))
            .header("x-user", user.as_str())
            .send()
            .await
            .unwrap();
        let expected_status = if flags.is_enabled("ramp", Some(user)) {
            500
        } else {
            200
        };
        assert_eq!(response.status().as_u16(), expected_status, "{user}");
        assert_eq!(response.text().await.unwrap(), expected_body(&flags, user));
    }
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    server.abort();

    let expected = expected_requests(&flags, &users);
    assert_eq!(samples(&text, REQUESTS_TOTAL), expected, "{text}");
    assert!(
        expected
            .iter()
            .any(|line| line.contains(r#"cohort="on",flag="ramp",outcome="error""#))
            && expected
                .iter()
                .any(|line| line.contains(r#"cohort="off",flag="ramp",outcome="ok""#)),
        "the users cover both cohorts of ramp: {expected:#?}"
    );
    // One latency observation per request for each (flag, cohort).
    let ramp_on = users
        .iter()
        .filter(|user| flags.is_enabled("ramp", Some(user)))
        .count();
    let ramp_off = users.len() - ramp_on;
    let histogram = |suffix: &str| samples(&text, &format!("{REQUEST_DURATION_SECONDS}{suffix}"));
    let ramp_lines = |lines: Vec<&str>| -> Vec<String> {
        lines
            .into_iter()
            .filter(|line| line.contains(r#"flag="ramp""#))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        ramp_lines(histogram("_count")),
        [
            format!(
                r#"rollgate_flag_request_duration_seconds_count{{cohort="off",flag="ramp"}} {ramp_off}"#
            ),
            format!(
                r#"rollgate_flag_request_duration_seconds_count{{cohort="on",flag="ramp"}} {ramp_on}"#
            ),
        ]
    );
    let bucket = |cohort: &str, le: &str, count: usize| {
        format!(
            r#"rollgate_flag_request_duration_seconds_bucket{{cohort="{cohort}",flag="ramp",le="{le}"}} {count}"#
        )
    };
    assert_eq!(
        ramp_lines(histogram("_bucket")),
        [
            bucket("off", "+Inf", ramp_off),
            bucket("off", "0.001", 0),
            bucket("off", "60", ramp_off),
            bucket("on", "+Inf", ramp_on),
            bucket("on", "0.001", 0),
            bucket("on", "60", ramp_on),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_keep_their_own_scopes() {
    let flags = flags();
    let registry = Registry::new();
    let metrics = CohortMetrics::register(&registry).unwrap();
    let (base, server) = serve(flags.clone(), registry, metrics).await;
    let client = client();
    let users = users(200);
    let mut requests = tokio::task::JoinSet::new();
    for user in users.clone() {
        let (client, base, flags) = (client.clone(), base.clone(), flags.clone());
        requests.spawn(async move {
            let response = client
                .get(format!("{base}/checkout"))
                .header("x-user", user.as_str())
                .send()
                .await
                .unwrap();
            let body = response.text().await.unwrap();
            assert_eq!(body, expected_body(&flags, &user), "{user}");
        });
    }
    while let Some(done) = requests.join_next().await {
        done.unwrap();
    }
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    server.abort();
    assert_eq!(
        samples(&text, REQUESTS_TOTAL),
        expected_requests(&flags, &users)
    );
}
