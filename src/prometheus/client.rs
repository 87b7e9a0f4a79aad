//! The HTTP client for Prometheus' instant-query API (`/api/v1/query`).

use std::error::Error as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};

use super::auth::{Auth, TokenFile};
use super::budget::QueryBudget;
use super::error::PrometheusError;
use super::response::{Parsed, QueryData, Sample, parse_body, sample_of, values_by_label};

/// The query timeout when none is configured.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Answers larger than this are refused: a gate needs one number, and a query that returns
/// megabytes is a mistake that should not cost the operator its memory.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// How to reach one Prometheus (or Thanos, Cortex, Mimir) query API.
#[derive(Clone, Debug, PartialEq)]
pub struct PrometheusConfig {
    /// Base URL, e.g. `http://prometheus.monitoring:9090` or `https://mimir/prometheus`.
    pub address: String,
    /// Time allowed for one query, sent to Prometheus as its `timeout` too (default 10 s).
    pub timeout: Duration,
    pub auth: Auth,
    /// PEM file of the CA certificates to trust instead of the system's.
    pub ca_bundle: Option<PathBuf>,
    /// Accept any server certificate. For tests and emergencies only.
    pub insecure_skip_verify: bool,
    /// Extra headers on every query, e.g. `X-Scope-OrgID` for a Mimir or Cortex tenant.
    pub headers: Vec<(String, String)>,
}

impl PrometheusConfig {
    /// A config for `address` with the defaults: 10 s timeout, no auth, system CAs.
    pub fn new(address: impl Into<String>) -> Self {
        Self {
            address: address.into(),
            timeout: DEFAULT_TIMEOUT,
            auth: Auth::None,
            ca_bundle: None,
            insecure_skip_verify: false,
            headers: Vec::new(),
        }
    }
}

/// Parses one extra header as the operator (`--prometheus-header`), `rollgate analyze` and
/// `rollgate simulate` (`--header`) take it: `Name: value` or `Name=value`, split at the
/// first `:` or `=`, whichever comes first, so either may appear in the value. The name is
/// trimmed and must be a valid HTTP header name; the value loses its leading whitespace.
///
/// Used as a clap value parser, whose message names the option; this one names the text.
pub fn parse_header(text: &str) -> Result<(String, String), String> {
    let Some(at) = text.find([':', '=']) else {
        return Err(format!(
            "{text:?} is not a header: expected `Name: value` or `Name=value`"
        ));
    };
    let name = text[..at].trim();
    let value = text[at + 1..].trim_start();
    if name.is_empty() {
        return Err(format!("{text:?} has no header name before its `:` or `=`"));
    }
    if HeaderName::from_bytes(name.as_bytes()).is_err() {
        return Err(format!(
            "{text:?}: {name:?} is not a valid HTTP header name"
        ));
    }
    Ok((name.to_string(), value.to_string()))
}

/// A client for one Prometheus address. Cheap to clone; clones share the connection pool.
#[derive(Clone)]
pub struct PrometheusClient {
    inner: Arc<Inner>,
    /// The operator's shared query budget; `None` (the CLI) sends at once.
    budget: Option<Arc<QueryBudget>>,
}

struct Inner {
    config: PrometheusConfig,
    /// The address as shown in messages: no password, no trailing slash.
    address: String,
    query_url: Url,
    http: reqwest::Client,
    headers: HeaderMap,
    auth: ResolvedAuth,
}

enum ResolvedAuth {
    None,
    Bearer(TokenFile),
    Basic { username: String, password: String },
}

impl std::fmt::Debug for PrometheusClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrometheusClient")
            .field("address", &self.inner.address)
            .field("timeout", &self.inner.config.timeout)
            .finish_non_exhaustive()
    }
}

impl PrometheusClient {
    /// Checks the config and builds the client. Nothing is sent yet.
    pub fn new(config: PrometheusConfig) -> Result<Self, PrometheusError> {
        let (query_url, address) = parse_address(&config.address)?;
        let config_error = |reason: String| PrometheusError::Config {
            address: address.clone(),
            reason,
        };
        if config.timeout.is_zero() {
            return Err(config_error(
                "the query timeout must be more than zero".into(),
            ));
        }
        let headers = header_map(&config.headers).map_err(config_error)?;
        ensure_crypto_provider();
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("rollgate/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(config.timeout)
            // The API never redirects; following one could send credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .tls_danger_accept_invalid_certs(config.insecure_skip_verify);
        if let Some(path) = &config.ca_bundle {
            let pem = std::fs::read(path).map_err(|error| {
                config_error(format!("cannot read CA bundle {}: {error}", path.display()))
            })?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
                config_error(format!("CA bundle {} is not PEM: {error}", path.display()))
            })?;
            if certificates.is_empty() {
                return Err(config_error(format!(
                    "CA bundle {} holds no certificate",
                    path.display()
                )));
            }
            builder = builder.tls_certs_only(certificates);
        }
        let http = builder
            .build()
            .map_err(|error| config_error(error_chain(&error)))?;
        let auth = match &config.auth {
            Auth::None => ResolvedAuth::None,
            Auth::BearerFile(path) => ResolvedAuth::Bearer(TokenFile::new(path.clone())),
            Auth::Basic { username, password } => ResolvedAuth::Basic {
                username: username.clone(),
                password: password.clone(),
            },
        };
        Ok(Self {
            budget: None,
            inner: Arc::new(Inner {
                config,
                address,
                query_url,
                http,
                headers,
                auth,
            }),
        })
    }

    /// The address as it appears in messages (any password masked).
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    pub fn config(&self) -> &PrometheusConfig {
        &self.inner.config
    }

    /// A client for another address with this one's timeout and TLS settings but **without
    /// its credentials or headers**: a flag's `prometheus.address` is chosen by whoever
    /// writes the flag, and must not be a way to collect the operator's token. Returns a
    /// clone of `self` when the address is the same.
    pub fn for_address(&self, address: &str) -> Result<Self, PrometheusError> {
        let (url, _) = parse_address(address)?;
        if url == self.inner.query_url {
            return Ok(self.clone());
        }
        Ok(Self::new(PrometheusConfig {
            address: address.to_string(),
            auth: Auth::None,
            headers: Vec::new(),
            ..self.inner.config.clone()
        })?
        .with_budget(self.budget.clone()))
    }

    /// Every query first waits for its turn in `budget`, shared with the clients made from
    /// this one by [`Self::for_address`]. The query's timeout starts once its turn has come.
    pub fn with_budget(mut self, budget: Option<Arc<QueryBudget>>) -> Self {
        self.budget = budget;
        self
    }

    /// Runs an instant query, evaluated at `time` (Prometheus' "now" when `None`), within one
    /// timeout in all: a GET retry after a 405 shares the deadline of the POST before it.
    pub async fn query(
        &self,
        promql: &str,
        time: Option<Timestamp>,
    ) -> Result<Sample, PrometheusError> {
        let data = self.query_data(promql, time).await?;
        sample_of(data, &self.inner.address, promql)
    }

    /// Runs an instant query aggregated `by (label)` and returns each series' label value
    /// with its value, as [`Self::query`] does for one number.
    pub async fn query_by_label(
        &self,
        promql: &str,
        time: Option<Timestamp>,
        label: &'static str,
    ) -> Result<Vec<(String, f64)>, PrometheusError> {
        let data = self.query_data(promql, time).await?;
        values_by_label(data, &self.inner.address, promql, label)
    }

    async fn query_data(
        &self,
        promql: &str,
        time: Option<Timestamp>,
    ) -> Result<Option<QueryData>, PrometheusError> {
        let _turn = match &self.budget {
            Some(budget) => Some(budget.turn().await),
            None => None,
        };
        let timeout = self.inner.config.timeout;
        tokio::time::timeout(timeout, self.query_unbounded(promql, time))
            .await
            .unwrap_or_else(|_elapsed| {
                Err(PrometheusError::Timeout {
                    address: self.inner.address.clone(),
                    timeout,
                })
            })
    }

    async fn query_unbounded(
        &self,
        promql: &str,
        time: Option<Timestamp>,
    ) -> Result<Option<QueryData>, PrometheusError> {
        let inner = &*self.inner;
        let mut params = vec![
            ("query", promql.to_string()),
            ("timeout", format!("{}ms", inner.config.timeout.as_millis())),
        ];
        if let Some(time) = time {
            params.push(("time", time.to_string()));
        }
        let mut response = self.send(Method::POST, &params).await?;
        if response.status() == StatusCode::METHOD_NOT_ALLOWED {
            // Some proxies in front of Prometheus only allow GET.
            response = self.send(Method::GET, &params).await?;
        }
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED
            && let ResolvedAuth::Bearer(file) = &inner.auth
        {
            file.invalidate();
        }
        let body = self.read_body(response).await?;
        match (parse_body(&body), status.is_success()) {
            (
                Parsed::ApiError {
                    error_type,
                    message,
                },
                _,
            ) => Err(PrometheusError::Api {
                address: inner.address.clone(),
                status: status.as_u16(),
                error_type,
                message,
                query: promql.to_string(),
            }),
            (Parsed::Success { data, warnings }, true) => {
                for warning in &warnings {
                    tracing::warn!(address = %inner.address, query = promql, %warning, "Prometheus warning");
                }
                Ok(data)
            }
            (_, false) => Err(PrometheusError::Http {
                address: inner.address.clone(),
                status: status.as_u16(),
                body: snippet(&body),
            }),
            (Parsed::NotPrometheus(reason), true) => Err(PrometheusError::Decode {
                address: inner.address.clone(),
                reason: format!("{reason}; body starts {:?}", snippet(&body)),
            }),
        }
    }

    async fn send(
        &self,
        method: Method,
        params: &[(&str, String)],
    ) -> Result<reqwest::Response, PrometheusError> {
        let inner = &*self.inner;
        let mut request = inner
            .http
            .request(method.clone(), inner.query_url.clone())
            .timeout(inner.config.timeout)
            .headers(inner.headers.clone());
        request = if method == Method::GET {
            request.query(params)
        } else {
            request.form(params)
        };
        request = match &inner.auth {
            ResolvedAuth::None => request,
            ResolvedAuth::Basic { username, password } => {
                request.basic_auth(username, Some(password))
            }
            ResolvedAuth::Bearer(file) => {
                let token = file
                    .token()
                    .await
                    .map_err(|reason| PrometheusError::TokenFile {
                        address: inner.address.clone(),
                        path: file.path().to_path_buf(),
                        reason,
                    })?;
                let mut value =
                    HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                        PrometheusError::TokenFile {
                            address: inner.address.clone(),
                            path: file.path().to_path_buf(),
                            reason: "the token is not a valid header value".into(),
                        }
                    })?;
                value.set_sensitive(true);
                request.header(AUTHORIZATION, value)
            }
        };
        request
            .send()
            .await
            .map_err(|error| self.transport_error(&error))
    }

    async fn read_body(&self, mut response: reqwest::Response) -> Result<Vec<u8>, PrometheusError> {
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|error| self.transport_error(&error))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(PrometheusError::Decode {
                    address: self.inner.address.clone(),
                    reason: format!(
                        "the answer is larger than {} MiB; aggregate the query to one series",
                        MAX_RESPONSE_BYTES / (1024 * 1024)
                    ),
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }

    fn transport_error(&self, error: &reqwest::Error) -> PrometheusError {
        let address = self.inner.address.clone();
        if error.is_timeout() {
            PrometheusError::Timeout {
                address,
                timeout: self.inner.config.timeout,
            }
        } else if error.is_connect() {
            PrometheusError::Connect {
                address,
                reason: error_chain(error),
            }
        } else {
            PrometheusError::Transport {
                address,
                reason: error_chain(error),
            }
        }
    }
}

/// Validates an address and returns the query URL and the address as shown in messages.
fn parse_address(address: &str) -> Result<(Url, String), PrometheusError> {
    let invalid = |reason: String| PrometheusError::InvalidAddress {
        address: address.to_string(),
        reason,
    };
    let mut url = Url::parse(address.trim()).map_err(|error| invalid(error.to_string()))?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(invalid("the scheme must be http or https".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("there is no host".into()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("a query string or fragment is not allowed".into()));
    }
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("xxxxx"));
    }
    let shown = shown.as_str().trim_end_matches('/').to_string();
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    let query_url = url
        .join("api/v1/query")
        .map_err(|error| invalid(error.to_string()))?;
    Ok((query_url, shown))
}

fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let header = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a valid header name"))?;
        if header == AUTHORIZATION {
            return Err("set Authorization through the bearer-token or basic-auth options".into());
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header {name} is not a valid header value"))?;
        map.append(header, value);
    }
    Ok(map)
}

/// reqwest uses the process-wide rustls crypto provider and would panic without one. Rollgate
/// builds rustls with `ring` only (as kube does), so install that one if nobody has yet.
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one first, which is just as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// An error and its sources on one line, without the URL (the address is named already).
fn error_chain(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let top = error.to_string();
    // reqwest's own text is "error sending request for url (…)"; the causes say more.
    let top = match top.find(" for url (") {
        Some(index) => top[..index].to_string(),
        None => top,
    };
    parts.push(top);
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// The first 200 characters of a body, on one line.
fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(200) {
        Some((index, _)) => format!("{}…", &line[..index]),
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_query_urls() {
        let cases = [
            (
                "http://prometheus:9090",
                "http://prometheus:9090/api/v1/query",
            ),
            (
                "http://prometheus:9090/",
                "http://prometheus:9090/api/v1/query",
            ),
            (
                "https://mimir.example/prometheus",
                "https://mimir.example/prometheus/api/v1/query",
            ),
            ("https://thanos/q/", "https://thanos/q/api/v1/query"),
        ];
        for (address, expected) in cases {
            assert_eq!(parse_address(address).unwrap().0.as_str(), expected);
        }
        for bad in ["prometheus:9090", "ftp://x", "http://", "http://x?a=b", ""] {
            let error = parse_address(bad).unwrap_err();
            assert_eq!(error.category(), "prometheus_config", "{bad}");
        }
    }

    #[test]
    fn passwords_are_masked_in_messages() {
        let (_, shown) = parse_address("http://user:secret@prometheus:9090/").unwrap();
        assert_eq!(shown, "http://user:xxxxx@prometheus:9090");
    }

    #[test]
    fn config_errors_name_the_address() {
        let mut config = PrometheusConfig::new("http://prometheus:9090");
        config.headers = vec![("bad header".into(), "x".into())];
        let error = PrometheusClient::new(config).unwrap_err();
        assert!(
            error.to_string().contains("http://prometheus:9090"),
            "{error}"
        );
        let mut config = PrometheusConfig::new("http://prometheus:9090");
        config.ca_bundle = Some("/nonexistent/ca.pem".into());
        let error = PrometheusClient::new(config).unwrap_err();
        assert!(error.to_string().contains("/nonexistent/ca.pem"), "{error}");
        let mut config = PrometheusConfig::new("http://prometheus:9090");
        config.headers = vec![("Authorization".into(), "Bearer x".into())];
        assert!(PrometheusClient::new(config).is_err());
    }

    #[test]
    fn headers_are_name_colon_value_or_name_equals_value() {
        let header = |name: &str, value: &str| Ok((name.to_string(), value.to_string()));
        let cases = [
            ("X-Scope-OrgID: team-a", header("X-Scope-OrgID", "team-a")),
            ("X-Scope-OrgID=team-a", header("X-Scope-OrgID", "team-a")),
            (
                " X-Scope-OrgID :  team-a ",
                header("X-Scope-OrgID", "team-a "),
            ),
            ("X-Scope-OrgID = team-a", header("X-Scope-OrgID", "team-a")),
            // The first `:` or `=` splits; the other one belongs to the value.
            ("X-Query=a:b", header("X-Query", "a:b")),
            ("X-Query: a=b", header("X-Query", "a=b")),
            (
                "X-Url: http://x:9090/?a=b",
                header("X-Url", "http://x:9090/?a=b"),
            ),
            ("X-Empty:", header("X-Empty", "")),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_header(text), expected, "{text}");
        }
    }

    #[test]
    fn bad_headers_are_refused_with_the_text() {
        for (text, words) in [
            ("novalue", "expected `Name: value` or `Name=value`"),
            ("", "expected `Name: value` or `Name=value`"),
            (": team-a", "has no header name"),
            ("  =team-a", "has no header name"),
            ("bad name=x", "\"bad name\" is not a valid HTTP header name"),
            ("X-Ok\u{e9}: x", "is not a valid HTTP header name"),
            ("(x)=y", "is not a valid HTTP header name"),
        ] {
            let error = parse_header(text).unwrap_err();
            assert!(error.contains(&format!("{text:?}")), "{text}: {error}");
            assert!(error.contains(words), "{text}: {error}");
        }
    }

    #[test]
    fn another_address_drops_credentials() {
        let mut config = PrometheusConfig::new("http://prometheus:9090");
        config.auth = Auth::Basic {
            username: "u".into(),
            password: "p".into(),
        };
        config.headers = vec![("X-Scope-OrgID".into(), "team".into())];
        config.timeout = Duration::from_secs(3);
        let client = PrometheusClient::new(config).unwrap();
        let same = client.for_address("http://prometheus:9090/").unwrap();
        assert_eq!(same.config().auth, client.config().auth);
        let other = client.for_address("http://elsewhere:9090").unwrap();
        assert_eq!(other.config().auth, Auth::None);
        assert!(other.config().headers.is_empty());
        assert_eq!(other.config().timeout, Duration::from_secs(3));
    }
}
