//! The relay's HTTP shell: routes, the guards every namespace route passes (bearer token,
//! request limit, namespace), the OFREP handlers around the pure mapping of `ofrep`, the SSE
//! fan-out, TLS and the ops endpoints.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::auth::{self, TokenEntry, Verdict};
use super::config::{self, RelayArgs, RelayError};
use super::limit::Limiter;
use super::metrics::RelayMetrics;
use super::ofrep::{self, ContextLimits, EvalContext};
use super::source::{self, Namespace, SourceSpec};

/// How often the tokens file is checked for a change.
const TOKENS_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often clients whose request allowance is full again are forgotten.
const LIMITER_SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// The `inactivityDelaySec` advertised with the event stream (the protocol's default).
const INACTIVITY_DELAY_SEC: u64 = 120;
/// How long a stopping relay lets requests in flight finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

type Tokens = Arc<RwLock<Arc<Vec<TokenEntry>>>>;

struct AppState {
    namespaces: HashMap<String, Arc<Namespace>>,
    tokens: Option<Tokens>,
    limiter: Option<Arc<Limiter>>,
    context_limits: ContextLimits,
    max_body_bytes: usize,
    keep_alive: Duration,
    metrics: RelayMetrics,
    shutdown: watch::Receiver<bool>,
}

type Shared = Arc<AppState>;

/// A running relay.
pub struct RelayHandle {
    /// The address it listens on (the real port when `--listen` asked for port 0).
    pub local_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    server: axum_server::Handle<SocketAddr>,
    task: JoinHandle<std::io::Result<()>>,
    background: Vec<JoinHandle<()>>,
}

impl RelayHandle {
    /// Ends every event stream, lets requests in flight finish (up to 5 s) and stops every
    /// task the relay started.
    pub async fn shutdown(self) -> std::io::Result<()> {
        let _ = self.shutdown.send(true);
        self.server.graceful_shutdown(Some(SHUTDOWN_GRACE));
        let result = match self.task.await {
            Ok(result) => result,
            Err(error) => Err(std::io::Error::other(error)),
        };
        for task in self.background {
            task.abort();
        }
        result
    }

    /// Waits until the server stops by itself (an I/O error on the listener).
    pub async fn wait(&mut self) -> std::io::Result<()> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(error) => Err(std::io::Error::other(error)),
        }
    }
}

/// Builds and starts the relay: the sources, the tokens, the listener and the server.
pub struct Relay;

impl Relay {
    /// Starts serving; returns once the listener is bound (sources load in the background,
    /// and `/readyz` answers 503 until all of them have).
    pub async fn start(args: RelayArgs) -> Result<RelayHandle, RelayError> {
        let sources = config::sources(&args)?;
        let metrics = RelayMetrics::new()?;
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let mut background = Vec::new();

        let client = if sources
            .iter()
            .any(|(_, spec)| matches!(spec, SourceSpec::ConfigMap { .. }))
        {
            Some(kube_client(args.kubeconfig.as_ref()).await?)
        } else {
            None
        };
        let mut namespaces = HashMap::new();
        for (name, spec) in sources {
            let namespace = Arc::new(Namespace::new(name.clone(), spec, &metrics));
            background.push(tokio::spawn(source::follow(
                Arc::clone(&namespace),
                client.clone(),
            )));
            namespaces.insert(name, namespace);
        }

        let tokens = match &args.tokens_file {
            Some(path) => {
                let tokens: Tokens = Arc::new(RwLock::new(Arc::new(read_tokens(path)?)));
                background.push(tokio::spawn(reload_tokens(
                    path.clone(),
                    Arc::clone(&tokens),
                    metrics.clone(),
                )));
                Some(tokens)
            }
            None => None,
        };
        let limiter = args.rate_limit.map(|limit| Arc::new(Limiter::new(limit)));
        if let Some(limiter) = &limiter {
            let limiter = Arc::clone(limiter);
            background.push(tokio::spawn(async move {
                loop {
                    tokio::time::sleep(LIMITER_SWEEP_INTERVAL).await;
                    limiter.forget_idle();
                }
            }));
        }
        let cors = cors_layer(&args.cors_origins)?;

        let state = Arc::new(AppState {
            namespaces,
            tokens,
            limiter,
            context_limits: ContextLimits {
                max_attributes: args.max_context_attributes,
                max_string_bytes: args.max_context_string_bytes,
                ..ContextLimits::default()
            },
            max_body_bytes: args.max_body_bytes,
            keep_alive: args.sse_keep_alive,
            metrics,
            shutdown: shutdown_rx,
        });
        let mut app = router(state);
        if let Some(cors) = cors {
            app = app.layer(cors);
        }

        let listen_error = |source| RelayError::Listen {
            address: args.listen,
            source,
        };
        let listener = std::net::TcpListener::bind(args.listen).map_err(listen_error)?;
        listener.set_nonblocking(true).map_err(listen_error)?;
        let local_addr = listener.local_addr().map_err(listen_error)?;
        let handle = axum_server::Handle::new();
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let task = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => {
                if rustls::crypto::CryptoProvider::get_default().is_none() {
                    // Fails only when another thread installed one first: just as good.
                    let _ = rustls::crypto::ring::default_provider().install_default();
                }
                let tls_error = |source| RelayError::Tls {
                    cert: cert.clone(),
                    key: key.clone(),
                    source,
                };
                let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(tls_error)?;
                let server = axum_server::from_tcp_rustls(listener, config)
                    .map_err(listen_error)?
                    .handle(handle.clone());
                tokio::spawn(server.serve(service))
            }
            _ => {
                let server = axum_server::from_tcp(listener)
                    .map_err(listen_error)?
                    .handle(handle.clone());
                tokio::spawn(server.serve(service))
            }
        };
        let scheme = if args.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        tracing::info!(address = %local_addr, %scheme, "rollgate relay listening");
        if let Some(path) = &args.port_file {
            std::fs::write(path, format!("{}\n", local_addr.port())).map_err(|source| {
                RelayError::Read {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        Ok(RelayHandle {
            local_addr,
            shutdown: shutdown_tx,
            server: handle,
            task,
            background,
        })
    }
}

/// A client as the operator builds one: `--kubeconfig`, else kube's inference.
async fn kube_client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, RelayError> {
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| RelayError::KubeConfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .map_err(|e| RelayError::KubeConfig(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| RelayError::KubeConfig(e.to_string()))?,
    };
    kube::Client::try_from(config).map_err(|e| RelayError::KubeConfig(e.to_string()))
}

fn read_tokens(path: &PathBuf) -> Result<Vec<TokenEntry>, RelayError> {
    let text = std::fs::read_to_string(path).map_err(|source| RelayError::Read {
        path: path.clone(),
        source,
    })?;
    let tokens = auth::parse_tokens(&text).map_err(|error| RelayError::Tokens {
        path: path.clone(),
        error,
    })?;
    if tokens.is_empty() {
        tracing::warn!(path = %path.display(), "the tokens file has no token: every namespace request gets 401");
    }
    Ok(tokens)
}

/// What tells a tokens file changed: a Secret volume swaps a symlink, an editor rewrites.
fn file_identity(path: &PathBuf) -> Option<(u64, u64, Option<SystemTime>, u64)> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path).ok()?;
    Some((
        metadata.dev(),
        metadata.ino(),
        metadata.modified().ok(),
        metadata.len(),
    ))
}

/// Re-reads the tokens file when it changes; a bad file keeps the last good tokens.
async fn reload_tokens(path: PathBuf, tokens: Tokens, metrics: RelayMetrics) {
    let mut seen = file_identity(&path);
    loop {
        tokio::time::sleep(TOKENS_CHECK_INTERVAL).await;
        let now = file_identity(&path);
        if now == seen {
            continue;
        }
        seen = now;
        match read_tokens(&path) {
            Ok(fresh) => {
                tracing::info!(path = %path.display(), tokens = fresh.len(), "tokens reloaded");
                *tokens
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(fresh);
            }
            Err(error) => {
                metrics.tokens_reload_errors.inc();
                tracing::error!(%error, "tokens file refused; keeping the last good tokens");
            }
        }
    }
}

fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, RelayError> {
    let origins: Vec<&str> = origins
        .iter()
        .map(|origin| origin.trim())
        .filter(|origin| !origin.is_empty())
        .collect();
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.contains(&"*") {
        AllowOrigin::any()
    } else {
        let mut values = Vec::new();
        for origin in origins {
            let value = HeaderValue::from_str(origin.trim_end_matches('/')).map_err(|_| {
                RelayError::Config(format!("--cors-origin {origin:?} is not a valid origin"))
            })?;
            values.push(value);
        }
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::IF_NONE_MATCH,
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::ETAG, header::RETRY_AFTER, header::WWW_AUTHENTICATE])
            .max_age(Duration::from_secs(600)),
    ))
}

fn router(state: Shared) -> Router {
    Router::new()
        .route(
            "/ns/{namespace}/ofrep/v1/evaluate/flags",
            post(evaluate_bulk),
        )
        .route(
            "/ns/{namespace}/ofrep/v1/evaluate/flags/{key}",
            post(evaluate_flag),
        )
        .route("/ns/{namespace}/ofrep/v1/events", get(events))
        .route("/metrics", get(render_metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&state),
            count_request,
        ))
        .fallback(unmatched)
        .with_state(state)
}

/// `rollgate_relay_requests_total{route, code}` for every matched route.
async fn count_request(State(state): State<Shared>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_default();
    let response = next.run(request).await;
    state
        .metrics
        .requests
        .with_label_values(&[route.as_str(), response.status().as_str()])
        .inc();
    response
}

async fn unmatched(State(state): State<Shared>) -> Response {
    state
        .metrics
        .requests
        .with_label_values(&["unmatched", "404"])
        .inc();
    error_body(
        StatusCode::NOT_FOUND,
        None,
        "GENERAL",
        "no such route: the OFREP base URL is /ns/{namespace}".into(),
    )
}

async fn render_metrics(State(state): State<Shared>) -> Response {
    for namespace in state.namespaces.values() {
        if let Some(flags) = namespace.flags() {
            let labels = [namespace.name.as_str()];
            state
                .metrics
                .source_generation
                .with_label_values(&labels)
                .set(i64::try_from(flags.generation()).unwrap_or(i64::MAX));
            state
                .metrics
                .source_reload_errors
                .with_label_values(&labels)
                .set(i64::try_from(flags.reload_errors()).unwrap_or(i64::MAX));
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
        .into_response()
}

async fn readyz(State(state): State<Shared>) -> Response {
    let mut waiting: Vec<&str> = state
        .namespaces
        .values()
        .filter(|namespace| namespace.flags().is_none())
        .map(|namespace| namespace.name.as_str())
        .collect();
    if waiting.is_empty() {
        return (StatusCode::OK, "ready").into_response();
    }
    waiting.sort_unstable();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("flag sources not loaded yet: {}", waiting.join(", ")),
    )
        .into_response()
}

/// A JSON error body `{key?, errorCode, errorDetails}`.
fn error_body(status: StatusCode, key: Option<&str>, code: &str, details: String) -> Response {
    let mut body = serde_json::Map::new();
    if let Some(key) = key {
        body.insert("key".into(), key.into());
    }
    body.insert("errorCode".into(), code.into());
    body.insert("errorDetails".into(), details.into());
    json_response(status, serde_json::Value::Object(body).to_string().into())
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// What a namespace route may go on with.
struct Admitted {
    namespace: Arc<Namespace>,
    /// The token's id, when tokens are configured.
    token: Option<String>,
}

/// The checks of every namespace route, in order: the bearer token (401), the request limit
/// (429, keyed by the token, else the client's address), the namespace (404), the token's
/// namespaces (403).
fn admit(
    state: &AppState,
    headers: &HeaderMap,
    client: SocketAddr,
    namespace: &str,
    ticket: Option<&str>,
) -> Result<Admitted, Box<Response>> {
    let verdict = state.tokens.as_ref().map(|tokens| {
        let tokens = Arc::clone(
            &tokens
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let authorization = headers.get(header::AUTHORIZATION);
        match (authorization, ticket) {
            (None, Some(ticket)) => auth::check_ticket(&tokens, ticket, namespace),
            (authorization, _) => {
                auth::check(&tokens, authorization.map(HeaderValue::as_bytes), namespace)
            }
        }
    });
    let token = match &verdict {
        Some(Verdict::Allowed { id } | Verdict::Forbidden { id }) => Some(id.clone()),
        _ => None,
    };
    if let Some(limiter) = &state.limiter {
        let key = match &token {
            Some(id) => format!("token {id}"),
            None => format!("address {}", client.ip()),
        };
        if let Err(seconds) = limiter.check(&key) {
            state.metrics.rate_limited.inc();
            let mut response = error_body(
                StatusCode::TOO_MANY_REQUESTS,
                None,
                "GENERAL",
                format!("request limit reached for this client; retry after {seconds} s"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            return Err(Box::new(response));
        }
    }
    if let Some(verdict @ (Verdict::Missing | Verdict::Invalid)) = &verdict {
        let (result, challenge, details) = match verdict {
            Verdict::Missing => (
                "missing",
                "Bearer realm=\"rollgate-relay\"",
                "this relay needs an Authorization: Bearer token",
            ),
            _ => (
                "invalid",
                "Bearer realm=\"rollgate-relay\", error=\"invalid_token\"",
                "the bearer token is not valid",
            ),
        };
        state
            .metrics
            .auth_refused
            .with_label_values(&[result])
            .inc();
        let mut response = error_body(StatusCode::UNAUTHORIZED, None, "GENERAL", details.into());
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        );
        return Err(Box::new(response));
    }
    let Some(found) = state.namespaces.get(namespace) else {
        return Err(Box::new(error_body(
            StatusCode::NOT_FOUND,
            None,
            "GENERAL",
            format!("this relay does not serve namespace {namespace:?}"),
        )));
    };
    if let Some(Verdict::Forbidden { .. }) = verdict {
        state
            .metrics
            .auth_refused
            .with_label_values(&["forbidden"])
            .inc();
        return Err(Box::new(error_body(
            StatusCode::FORBIDDEN,
            None,
            "GENERAL",
            format!("the bearer token is not allowed to read namespace {namespace:?}"),
        )));
    }
    Ok(Admitted {
        namespace: Arc::clone(found),
        token,
    })
}

fn not_loaded(namespace: &Namespace) -> Response {
    let mut response = error_body(
        StatusCode::SERVICE_UNAVAILABLE,
        None,
        "GENERAL",
        format!(
            "the flags of namespace {:?} have not loaded yet",
            namespace.name
        ),
    );
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Reads the body (413 past the limit) and parses the context (400).
async fn read_context(
    state: &AppState,
    body: Body,
    key: Option<&str>,
) -> Result<EvalContext, Box<Response>> {
    let bytes = axum::body::to_bytes(body, state.max_body_bytes)
        .await
        .map_err(|_| {
            Box::new(error_body(
                StatusCode::PAYLOAD_TOO_LARGE,
                key,
                "GENERAL",
                format!("the request body is over {} bytes", state.max_body_bytes),
            ))
        })?;
    ofrep::parse_request(&bytes, &state.context_limits).map_err(|error| {
        Box::new(error_body(
            StatusCode::BAD_REQUEST,
            key,
            error.code.as_str(),
            error.details,
        ))
    })
}

/// The shared start of both evaluation routes: the namespace checks, then the request's
/// context (read only once the namespace has loaded, as before).
async fn admitted_evaluation(
    state: &AppState,
    headers: &HeaderMap,
    client: SocketAddr,
    namespace: &str,
    body: Body,
    key: Option<&str>,
) -> Result<(Admitted, EvalContext), Box<Response>> {
    let admitted = admit(state, headers, client, namespace, None)?;
    if admitted.namespace.flags().is_none() {
        return Err(Box::new(not_loaded(&admitted.namespace)));
    }
    let context = read_context(state, body, key).await?;
    Ok((admitted, context))
}

async fn evaluate_flag(
    State(state): State<Shared>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path((namespace, key)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (admitted, context) =
        match admitted_evaluation(&state, &headers, client, &namespace, body, Some(&key)).await {
            Ok(admitted) => admitted,
            Err(response) => return *response,
        };
    let Some(flags) = admitted.namespace.flags() else {
        return not_loaded(&admitted.namespace);
    };
    let snapshot = flags.snapshot();
    let user = context.targeting_key.as_deref();
    let answer = ofrep::answer(
        &key,
        snapshot.document().flags.get(&key),
        snapshot.evaluate_with(&key, &context.attributes),
        user,
        snapshot.generation(),
    );
    admitted.namespace.count_answer(answer.label());
    let status = StatusCode::from_u16(answer.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    match serde_json::to_vec(&answer) {
        Ok(body) => json_response(status, body.into()),
        Err(error) => error_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            Some(&key),
            "GENERAL",
            error.to_string(),
        ),
    }
}

async fn evaluate_bulk(
    State(state): State<Shared>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(namespace): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (admitted, context) =
        match admitted_evaluation(&state, &headers, client, &namespace, body, None).await {
            Ok(admitted) => admitted,
            Err(response) => return *response,
        };
    let Some(flags) = admitted.namespace.flags() else {
        return not_loaded(&admitted.namespace);
    };
    let snapshot = flags.snapshot_arc();
    let template = admitted.namespace.bulk_template(&snapshot);
    let generation = template.generation;
    let stream_uri = stream_uri(&state, &namespace, admitted.token.as_deref());
    let etag = ofrep::bulk_etag(
        &namespace,
        &template.content_hash,
        generation,
        &stream_uri,
        &context,
    );
    let etag_header = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| ofrep::if_none_match(value, &etag));
    if unchanged {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_header)]).into_response();
    }
    let user = context.targeting_key.as_deref();
    let mut counts = [0u64; super::metrics::ANSWER_LABELS.len()];
    // Written straight into one buffer: the answers' fixed parts come from the template.
    let mut body = template.buffer();
    body.extend_from_slice(b"{\"flags\":[");
    for (index, ((key, entry), flag_template)) in snapshot
        .document()
        .flags
        .iter()
        .zip(&template.flags)
        .enumerate()
    {
        let answer = ofrep::answer(
            key,
            Some(entry),
            snapshot.evaluate_with(key, &context.attributes),
            user,
            generation,
        );
        if let Some(position) = super::metrics::ANSWER_LABELS
            .iter()
            .position(|label| *label == answer.label())
        {
            counts[position] += 1;
        }
        if index > 0 {
            body.push(b',');
        }
        ofrep::write_answer(&mut body, flag_template, &answer);
    }
    for (counter, count) in admitted.namespace.answers.iter().zip(counts) {
        if count > 0 {
            counter.inc_by(count);
        }
    }
    let tail = BulkTail {
        event_streams: [EventStream {
            kind: "sse",
            endpoint: Endpoint {
                request_uri: &stream_uri,
            },
            inactivity_delay_sec: INACTIVITY_DELAY_SEC,
        }],
        metadata: BulkMetadata {
            generation,
            content_hash: &template.content_hash,
        },
    };
    body.extend_from_slice(b"],");
    // The tail object's fields continue the body's object: its own `{` is dropped.
    let tail_start = body.len();
    if let Err(error) = serde_json::to_writer(&mut body, &tail) {
        return error_body(
            StatusCode::INTERNAL_SERVER_ERROR,
            None,
            "GENERAL",
            error.to_string(),
        );
    }
    body.remove(tail_start);
    template.record_size(body.len());
    let mut response = json_response(StatusCode::OK, body.into());
    response.headers_mut().insert(header::ETAG, etag_header);
    response
}

/// The bulk answer after `flags`: `eventStreams` and `metadata`.
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct BulkTail<'a> {
    event_streams: [EventStream<'a>; 1],
    metadata: BulkMetadata<'a>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct EventStream<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    endpoint: Endpoint<'a>,
    inactivity_delay_sec: u64,
}

/// Without `origin`: providers use the origin of their configured base URL (ADR-0008).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct Endpoint<'a> {
    request_uri: &'a str,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct BulkMetadata<'a> {
    generation: u64,
    content_hash: &'a str,
}

/// The event stream's path, with the caller's stream ticket when tokens are configured.
fn stream_uri(state: &AppState, namespace: &str, token: Option<&str>) -> String {
    let path = format!("/ns/{namespace}/ofrep/v1/events");
    let ticket = state.tokens.as_ref().zip(token).and_then(|(tokens, id)| {
        let tokens = Arc::clone(
            &tokens
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        auth::ticket(&tokens, id, namespace)
    });
    match ticket {
        Some(ticket) => format!("{path}?access={ticket}"),
        None => path,
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    access: Option<String>,
}

/// One SSE client: what its stream waits on, and its place in the clients gauge.
struct Subscriber {
    namespace: Arc<Namespace>,
    flags: rollgate_sdk::Flags,
    changes: watch::Receiver<u64>,
    shutdown: watch::Receiver<bool>,
    /// Send a `refetchEvaluation` at once: the client's `Last-Event-ID` names an older
    /// document than the current one.
    missed: bool,
    /// The opening comment is still to be sent.
    opening: bool,
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        self.namespace.sse_clients.dec();
    }
}

async fn events(
    State(state): State<Shared>,
    ConnectInfo(client): ConnectInfo<SocketAddr>,
    Path(namespace): Path<String>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Response {
    let admitted = match admit(
        &state,
        &headers,
        client,
        &namespace,
        query.access.as_deref(),
    ) {
        Ok(admitted) => admitted,
        Err(response) => return *response,
    };
    let Some(flags) = admitted.namespace.flags() else {
        return not_loaded(&admitted.namespace);
    };
    // Subscribe first, then read the current document: a change in between wakes the stream.
    let mut changes = flags.subscribe_async();
    changes.borrow_and_update();
    let current = ofrep::document_tag(&flags.snapshot().content_hash());
    let missed = headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|id| !id.is_empty() && id != current);
    admitted.namespace.sse_clients.inc();
    let subscriber = Subscriber {
        namespace: Arc::clone(&admitted.namespace),
        flags: flags.clone(),
        changes,
        shutdown: state.shutdown.clone(),
        missed,
        opening: true,
    };
    let stream = futures::stream::unfold(subscriber, |mut subscriber| async move {
        if subscriber.opening {
            subscriber.opening = false;
            // Sends the headers and a first line at once, through proxies that buffer.
            return Some((
                Ok::<_, Infallible>(Event::default().comment("rollgate relay")),
                subscriber,
            ));
        }
        if !subscriber.missed {
            tokio::select! {
                changed = subscriber.changes.changed() => changed.ok()?,
                _ = subscriber.shutdown.wait_for(|stop| *stop) => return None,
            }
            subscriber.changes.borrow_and_update();
        }
        subscriber.missed = false;
        let snapshot = subscriber.flags.snapshot_arc();
        let loaded = snapshot
            .loaded_at()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs())
            .unwrap_or_default();
        let (id, data) = ofrep::refetch_event(&snapshot.content_hash(), loaded);
        subscriber.namespace.sse_events.inc();
        let event = Event::default().event("message").id(id).data(data);
        Some((Ok(event), subscriber))
    });
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(state.keep_alive))
        .into_response();
    // nginx and similar proxies: do not buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}
