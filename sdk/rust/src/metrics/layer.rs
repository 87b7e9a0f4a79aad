//! [`CohortMetricsLayer`]: a request scope and its metrics around every request of a `tower`
//! HTTP service.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use http::{Request, Response};
use tokio::task::futures::TaskLocalFuture;
use tower::{Layer, Service};

use super::cohort_metrics::{CohortMetrics, Outcome};
use super::scope::RequestScope;

/// Wraps a service so that each request runs in its own [`RequestScope`] and is counted by
/// [`CohortMetrics::finish`] when its response is ready: `error` for a 5xx response or a
/// failed service future, `ok` otherwise (4xx included). With axum:
/// `Router::new().route(..).layer(CohortMetricsLayer::new(metrics))`.
///
/// The latency is the time to the response head; a streamed body is not waited for. A
/// request whose future is dropped before it completes (the client went away) is not
/// counted. Put a timeout inside this layer to count slow requests as errors.
#[derive(Clone, Debug)]
pub struct CohortMetricsLayer {
    metrics: CohortMetrics,
}

impl CohortMetricsLayer {
    pub fn new(metrics: CohortMetrics) -> Self {
        Self { metrics }
    }
}

impl<S> Layer<S> for CohortMetricsLayer {
    type Service = CohortMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        CohortMetricsService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`CohortMetricsLayer`] makes.
#[derive(Clone, Debug)]
pub struct CohortMetricsService<S> {
    inner: S,
    metrics: CohortMetrics,
}

impl<S, B, ResponseBody> Service<Request<B>> for CohortMetricsService<S>
where
    S: Service<Request<B>, Response = Response<ResponseBody>>,
{
    type Response = Response<ResponseBody>;
    type Error = S::Error;
    type Future = CohortMetricsFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let scope = RequestScope::new();
        let started = Instant::now();
        // Some services evaluate flags in `call` itself, before their future runs.
        let future = scope.run_sync(|| self.inner.call(request));
        CohortMetricsFuture {
            future: scope.scoped(future),
            finish: Some(Finish {
                metrics: self.metrics.clone(),
                scope,
                started,
            }),
        }
    }
}

/// What a request needs to be counted once its response is ready.
struct Finish {
    metrics: CohortMetrics,
    scope: RequestScope,
    started: Instant,
}

pin_project_lite::pin_project! {
    /// The response future of [`CohortMetricsService`].
    pub struct CohortMetricsFuture<F> {
        #[pin]
        future: TaskLocalFuture<RequestScope, F>,
        finish: Option<Finish>,
    }
}

impl<F, ResponseBody, E> Future for CohortMetricsFuture<F>
where
    F: Future<Output = Result<Response<ResponseBody>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.future.poll(cx));
        if let Some(finish) = this.finish.take() {
            let outcome = match &result {
                Ok(response) if !response.status().is_server_error() => Outcome::Ok,
                _ => Outcome::Error,
            };
            finish
                .metrics
                .finish(&finish.scope, outcome, finish.started.elapsed());
        }
        Poll::Ready(result)
    }
}
