"""``CohortMetricsMiddleware``: cohort-labelled request metrics for every Django request.

Each request opens a :class:`rollgate.metrics.RequestScope`; every flag the request
evaluates (views, the ``{% flag %}`` tag, ``@flag_required``, ``rollgate.flag_enabled``)
counts the request once in ``rollgate_flag_requests_total{flag, cohort, outcome}``.
Put it first in ``MIDDLEWARE`` so that its outcome and latency cover the other
middleware::

    MIDDLEWARE = ["rollgate.django.middleware.CohortMetricsMiddleware", ...]

Settings, read when Django loads the middleware:

- ``ROLLGATE_METRICS_LATENCY`` (bool, default False): also observe
  ``rollgate_flag_request_duration_seconds{flag, cohort}``.
- ``ROLLGATE_METRICS_REGISTRY`` (default ``prometheus_client.REGISTRY``): the
  ``CollectorRegistry``, or a dotted path to one, that the metrics are registered on.

The outcome is ``error`` for a 5xx response or an exception, ``ok`` otherwise (a 404 is
``ok``: the service answered). The latency ends when the view returns its response; the
streaming of a ``StreamingHttpResponse`` body is not in it. Needs ``prometheus-client``
(``pip install "rollgate[metrics]"``).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from rollgate.metrics import CohortMetrics

__all__ = ["CohortMetricsMiddleware", "metrics_from_settings"]

# One CohortMetrics per registry for the process: Django builds a middleware instance per
# handler (the test client, one per Client), and a registry refuses a second registration.
_shared: Dict[Any, CohortMetrics] = {}
_shared_lock = threading.Lock()


def metrics_from_settings() -> CohortMetrics:
    """The process's :class:`CohortMetrics` for the current settings, created on first use."""
    latency = getattr(settings, "ROLLGATE_METRICS_LATENCY", False)
    if not isinstance(latency, bool):
        raise ImproperlyConfigured(f"ROLLGATE_METRICS_LATENCY must be True or False, not {latency!r}")
    registry = _registry_setting()
    with _shared_lock:
        metrics = _shared.get(registry)
        if metrics is None:
            metrics = CohortMetrics(registry=registry, latency=latency)
            _shared[registry] = metrics
    if metrics.latency != latency:
        raise ImproperlyConfigured(
            f"ROLLGATE_METRICS_LATENCY is {latency} but the metrics on this registry were created with"
            f" {metrics.latency}; a registry holds one set, so change the setting before Django starts"
            " (in tests, give each setting its own ROLLGATE_METRICS_REGISTRY)"
        )
    return metrics


def _registry_setting() -> Any:
    try:
        from prometheus_client import REGISTRY, CollectorRegistry
    except ImportError as error:
        raise ImproperlyConfigured(
            "CohortMetricsMiddleware needs prometheus-client: pip install 'rollgate[metrics]'"
        ) from error
    registry = getattr(settings, "ROLLGATE_METRICS_REGISTRY", None)
    if registry is None:
        return REGISTRY
    if isinstance(registry, str):
        try:
            registry_object = import_string(registry)
        except ImportError as error:
            raise ImproperlyConfigured(f"ROLLGATE_METRICS_REGISTRY {registry!r} cannot be imported: {error}") from error
        if not isinstance(registry_object, CollectorRegistry):
            raise ImproperlyConfigured(
                f"ROLLGATE_METRICS_REGISTRY {registry!r} is a {type(registry_object).__name__}, not a CollectorRegistry"
            )
        return registry_object
    if not isinstance(registry, CollectorRegistry):
        raise ImproperlyConfigured(
            f"ROLLGATE_METRICS_REGISTRY must be a CollectorRegistry or a dotted path to one,"
            f" not a {type(registry).__name__}"
        )
    return registry


def _failed(response: Any) -> bool:
    return response.status_code >= 500


class CohortMetricsMiddleware:
    """Opens a request scope per request and counts it ``ok`` or ``error``; sync and async."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response
        self.metrics = metrics_from_settings()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: Any) -> Any:
        if self._async:
            return self._acall(request)
        with self.metrics.request() as scope:
            response = self.get_response(request)
            if _failed(response):
                scope.fail()
        return response

    async def _acall(self, request: Any) -> Any:
        # Evaluations in sync views run in a thread with a copy of this context, so they
        # still see the scope.
        with self.metrics.request() as scope:
            response = await self.get_response(request)
            if _failed(response):
                scope.fail()
        return response
