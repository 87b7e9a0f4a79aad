"""Cohort-labelled request metrics, for guarded rollouts.

The operator compares the users who got a flag with those who did not. For that, each
request counts once per flag it evaluated, labelled with the answer that request got::

    rollgate_flag_requests_total{flag, cohort, outcome}          counter
    rollgate_flag_request_duration_seconds{flag, cohort}         histogram (latency=True)

``cohort`` is the variant's name when the answer had a variant, else ``"on"`` or
``"off"``; ``outcome`` is ``"ok"`` or ``"error"``. Usage::

    from rollgate.metrics import CohortMetrics

    metrics = CohortMetrics()                   # one per process and registry
    with metrics.request() as scope:            # one scope per request
        if rollgate.flag_enabled("new-checkout", user):
            ...
        if failed:
            scope.fail()                        # counts as "error"

Every evaluation through :class:`rollgate.Flags` (and so the module-level helpers, the
Django tag and ``@flag_required``) inside the ``with`` block records into the scope; the
first answer for a flag counts, except answers a targeting rule decided, which never do. An exception leaving the block counts as ``"error"``.
Django users add :class:`rollgate.django.middleware.CohortMetricsMiddleware` instead.

Needs ``prometheus-client`` (``pip install "rollgate[metrics]"``); importing this module
does not, creating a :class:`CohortMetrics` does.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Dict, Optional, Sequence

from ._rules import Evaluation
from ._scope import CURRENT_SCOPE
from ._scope import current_scope as _current_scope

if TYPE_CHECKING:
    from contextvars import Token

__all__ = [
    "DURATION_METRIC",
    "ERROR",
    "OK",
    "REQUESTS_METRIC",
    "CohortMetrics",
    "RequestScope",
    "cohort_of",
    "current_scope",
]

OK = "ok"
ERROR = "error"
_OUTCOMES = (OK, ERROR)

#: The counter's name; the exposition adds ``_total``: ``rollgate_flag_requests_total``.
REQUESTS_METRIC = "rollgate_flag_requests"
DURATION_METRIC = "rollgate_flag_request_duration_seconds"


def cohort_of(evaluation: Evaluation) -> str:
    """The cohort an answer puts its user in: the variant's name, else ``"on"`` or ``"off"``."""
    if evaluation.variant is not None:
        return evaluation.variant
    return "on" if evaluation.enabled else "off"


def current_scope() -> Optional["RequestScope"]:
    """The request scope open in this thread or task, or None."""
    return _current_scope()


class CohortMetrics:
    """The counter (and optionally the latency histogram) on one Prometheus registry.

    ``registry`` defaults to ``prometheus_client.REGISTRY``. Create one per process and
    registry and share it: registering the same metric twice on a registry is an error.
    ``latency=True`` adds ``rollgate_flag_request_duration_seconds`` with ``buckets``
    (default: prometheus_client's, 5 ms to 10 s).
    """

    def __init__(
        self,
        registry: Any = None,
        latency: bool = False,
        buckets: Optional[Sequence[float]] = None,
    ) -> None:
        try:
            import prometheus_client
        except ImportError as error:
            raise ImportError(
                "rollgate.metrics.CohortMetrics needs prometheus-client: pip install 'rollgate[metrics]'"
            ) from error
        if buckets is not None and not latency:
            raise ValueError("CohortMetrics: buckets are for the latency histogram; pass latency=True too")
        if registry is None:
            registry = prometheus_client.REGISTRY
        self.latency = latency
        self.requests = _register(
            registry,
            REQUESTS_METRIC,
            lambda: prometheus_client.Counter(
                REQUESTS_METRIC,
                "Requests by feature flag evaluated during the request, the cohort the request's"
                " user was in (variant, on or off) and the outcome (ok or error).",
                ("flag", "cohort", "outcome"),
                registry=registry,
            ),
        )
        self.duration = None
        if latency:
            try:
                self.duration = _register(
                    registry,
                    DURATION_METRIC,
                    lambda: prometheus_client.Histogram(
                        DURATION_METRIC,
                        "Request latency by feature flag evaluated during the request and cohort.",
                        ("flag", "cohort"),
                        registry=registry,
                        buckets=prometheus_client.Histogram.DEFAULT_BUCKETS if buckets is None else buckets,
                    ),
                )
            except Exception:
                registry.unregister(self.requests)  # all or nothing: a retry must not collide
                raise

    def request(self) -> "RequestScope":
        """A scope for one request; enter it with ``with``."""
        return RequestScope(self)

    def count(self, cohorts: Dict[str, str], outcome: str, duration: Optional[float] = None) -> None:
        """Counts one request that evaluated ``cohorts`` (flag → cohort) with ``outcome``;
        ``duration`` (seconds) is observed when the histogram is enabled."""
        if outcome not in _OUTCOMES:
            raise ValueError(f"rollgate: a request outcome is 'ok' or 'error', not {outcome!r}")
        requests = self.requests
        histogram = self.duration
        for flag, cohort in cohorts.items():
            requests.labels(flag, cohort, outcome).inc()
            if histogram is not None and duration is not None:
                histogram.labels(flag, cohort).observe(duration)


def _register(registry: Any, name: str, create: Any) -> Any:
    try:
        return create()
    except ValueError as error:
        if "Duplicated timeseries" not in str(error):  # prometheus_client's words for it
            raise
        raise ValueError(
            f"rollgate: {name} is already registered on this Prometheus registry;"
            " create one CohortMetrics per registry and share it"
        ) from error


class RequestScope:
    """The flags one request evaluated, with the first answer for each, and its outcome.

    Enter it with ``with``; leaving the block counts the request: ``"error"`` when an
    exception leaves it or :meth:`fail` was called, else ``"ok"``. :meth:`finish` counts
    earlier, with an explicit outcome. A request that evaluated no flag counts nowhere.
    """

    __slots__ = ("metrics", "outcome", "_cohorts", "_started", "_token", "_finished")

    def __init__(self, metrics: CohortMetrics) -> None:
        self.metrics = metrics
        #: ``"ok"`` until :meth:`fail`.
        self.outcome = OK
        self._cohorts: Dict[str, str] = {}
        self._started: Optional[float] = None
        self._token: Optional["Token[Any]"] = None
        self._finished = False

    @property
    def cohorts(self) -> Dict[str, str]:
        """flag key → cohort, for the flags evaluated so far (a copy)."""
        return dict(self._cohorts)

    @property
    def finished(self) -> bool:
        return self._finished

    def record(self, key: str, evaluation: Evaluation) -> None:
        """Notes the answer for ``key`` unless the request already has one. Called by
        :class:`rollgate.Flags`. After the request was counted (a background task that
        outlived it) answers are no longer part of it and are not recorded. An answer a
        targeting rule decided is not recorded either: guardrails and experiments compare
        only the users the rollout itself decided (docs/targeting.md)."""
        if key not in self._cohorts and not self._finished and evaluation.rule is None:
            # setdefault: two threads sharing this context cannot both be first.
            self._cohorts.setdefault(key, cohort_of(evaluation))

    def fail(self) -> None:
        """Counts this request as ``"error"`` when it finishes."""
        self.outcome = ERROR

    def finish(self, outcome: Optional[str] = None) -> None:
        """Counts the request now, with ``outcome`` (``"ok"`` or ``"error"``; default: ``"error"``
        after :meth:`fail`, else ``"ok"``). Later evaluations are not recorded."""
        if self._started is None:
            raise RuntimeError(
                "rollgate: finish() on a request scope that was not entered; use `with metrics.request() as scope:`"
            )
        if self._finished:
            raise RuntimeError("rollgate: this request scope was already finished")
        if outcome is None:
            outcome = self.outcome
        elif outcome not in _OUTCOMES:
            raise ValueError(f"rollgate: a request outcome is 'ok' or 'error', not {outcome!r}")
        self.outcome = outcome
        self._finished = True
        self.metrics.count(self._cohorts, outcome, time.perf_counter() - self._started)

    def __enter__(self) -> "RequestScope":
        if self._started is not None:
            raise RuntimeError("rollgate: a request scope is entered once; make one per request")
        current = _current_scope()
        if current is not None and not current.finished:
            raise RuntimeError(
                "rollgate: a request scope is already open here; one request would count twice"
                " (is CohortMetricsMiddleware installed and a scope opened in the view as well?)"
            )
        self._started = time.perf_counter()
        self._token = CURRENT_SCOPE.set(self)
        return self

    def __exit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        assert self._token is not None
        CURRENT_SCOPE.reset(self._token)
        self._token = None
        if self._finished:
            return
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, Exception):
            self.finish(ERROR)
        else:
            # Cancellation (a client that went away), KeyboardInterrupt, SystemExit: the
            # request neither succeeded nor failed, so it counts nowhere.
            self._finished = True

    def __repr__(self) -> str:
        state = "finished" if self._finished else "open"
        return f"RequestScope({state}, outcome={self.outcome!r}, cohorts={self._cohorts!r})"
