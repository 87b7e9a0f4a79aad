"""CohortMetricsMiddleware with Django's test client: cohorts, outcomes and latency."""

import asyncio
import os

import pytest

django = pytest.importorskip("django")
prometheus_client = pytest.importorskip("prometheus_client")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_settings")
django.setup()

from django.core.exceptions import ImproperlyConfigured  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import AsyncClient, Client, RequestFactory, override_settings  # noqa: E402

from conftest import document, flag_entry  # noqa: E402
from rollgate.django.middleware import CohortMetricsMiddleware, metrics_from_settings  # noqa: E402
from rollgate.django.testing import override_flag  # noqa: E402

AB = [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}]
MIDDLEWARE = ["rollgate.django.middleware.CohortMetricsMiddleware"]
#: For ROLLGATE_METRICS_REGISTRY as a dotted path.
DOTTED_REGISTRY = prometheus_client.CollectorRegistry()


@pytest.fixture
def registry(tmp_path):
    """A fresh registry, set as the middleware's, with flags where user 7 is in and 8 is out."""
    path = tmp_path / "flags.json"
    path.write_text(
        document(flag_entry("checkout", percent=0, allowedUsers=["7"]), flag_entry("ab", variants=AB)),
        encoding="utf-8",
    )
    registry = prometheus_client.CollectorRegistry()
    with override_settings(
        ROLLGATE_FLAGS_PATH=str(path),
        ROOT_URLCONF="metrics_urls",
        MIDDLEWARE=MIDDLEWARE,
        ROLLGATE_METRICS_REGISTRY=registry,
    ):
        yield registry


def lines(registry, prefix="rollgate_flag_requests_total{"):
    text = prometheus_client.generate_latest(registry).decode()
    return sorted(line for line in text.splitlines() if line.startswith(prefix))


def counted(cohort, outcome, value, flag="checkout"):
    return f'rollgate_flag_requests_total{{cohort="{cohort}",flag="{flag}",outcome="{outcome}"}} {value}'


def test_a_200_view_counts_ok_in_its_cohort(registry):
    client = Client()
    assert client.get("/ok/", {"user": "7"}).content == b"on"
    assert client.get("/ok/", {"user": "8"}).content == b"off"
    assert client.get("/ok/", {"user": "9"}).content == b"off"
    assert lines(registry) == [counted("off", "ok", "2.0"), counted("on", "ok", "1.0")]


def test_a_variant_is_the_cohort(registry):
    import rollgate

    arm = rollgate.variant("ab", "3")
    assert Client().get("/variant/", {"user": "3"}).content.decode() == arm
    assert lines(registry) == [counted(arm, "ok", "1.0", flag="ab")]


def test_a_500_response_and_an_exception_count_error(registry):
    client = Client(raise_request_exception=False)
    assert client.get("/server-error/", {"user": "7"}).status_code == 500
    assert client.get("/raises/", {"user": "7"}).status_code == 500
    assert client.get("/raises/", {"user": "8"}).status_code == 500
    assert lines(registry) == [counted("off", "error", "1.0"), counted("on", "error", "2.0")]


def test_an_exception_raised_through_the_middleware_counts_error(registry):
    """Django turns a view's exception into a 500 below the middleware; an exception that
    still reaches it (a middleware that raises, or a direct call) counts as well."""
    import rollgate

    def get_response(request):
        rollgate.flag_enabled("checkout", "7")
        raise RuntimeError("the new checkout crashed")

    middleware = CohortMetricsMiddleware(get_response)
    with pytest.raises(RuntimeError, match="crashed"):
        middleware(RequestFactory().get("/"))
    assert lines(registry) == [counted("on", "error", "1.0")]


def test_a_404_is_ok(registry):
    assert Client().get("/not-found/", {"user": "7"}).status_code == 404
    assert Client().get("/decorated/").status_code == 404  # @flag_required, no request.user
    assert lines(registry) == [counted("off", "ok", "1.0"), counted("on", "ok", "1.0")]


def test_the_template_tag_records(registry):
    assert Client().get("/template/", {"user": "7"}).content == b"new"
    assert Client().get("/template/", {"user": "1"}).content == b"old"
    assert lines(registry) == [counted("off", "ok", "1.0"), counted("on", "ok", "1.0")]


def test_override_flag_gives_the_cohort(registry):
    with override_flag("checkout", active=True, variant="treatment"):
        Client().get("/ok/", {"user": "8"})
    assert lines(registry) == [counted("treatment", "ok", "1.0")]


def test_a_request_without_flags_counts_nowhere(registry):
    assert Client().get("/no-flags/").status_code == 200
    assert lines(registry) == []


def test_async_views_through_the_async_middleware(registry):
    async def run():
        client = AsyncClient()
        assert (await client.get("/async-ok/", {"user": "7"})).content == b"on"
        assert (await client.get("/ok/", {"user": "8"})).content == b"off"  # a sync view under ASGI
        assert (await client.get("/async-server-error/", {"user": "8"})).status_code == 503

    asyncio.run(run())
    assert lines(registry) == [counted("off", "error", "1.0"), counted("off", "ok", "1.0"), counted("on", "ok", "1.0")]


def test_the_middleware_is_async_capable_when_its_chain_is_async():
    from asgiref.sync import iscoroutinefunction

    registry = prometheus_client.CollectorRegistry()
    with override_settings(ROLLGATE_METRICS_REGISTRY=registry):

        async def get_response(request):
            return HttpResponse()

        assert iscoroutinefunction(CohortMetricsMiddleware(get_response))
        assert not iscoroutinefunction(CohortMetricsMiddleware(lambda request: HttpResponse()))


def test_latency_histogram_when_enabled(registry):
    latency_registry = prometheus_client.CollectorRegistry()
    with override_settings(ROLLGATE_METRICS_REGISTRY=latency_registry, ROLLGATE_METRICS_LATENCY=True):
        client = Client(raise_request_exception=False)
        client.get("/ok/", {"user": "7"})
        client.get("/raises/", {"user": "7"})
    labels = 'cohort="on",flag="checkout"'
    histogram = lines(latency_registry, "rollgate_flag_request_duration_seconds_")
    assert f'rollgate_flag_request_duration_seconds_bucket{{{labels},le="+Inf"}} 2.0' in histogram
    assert f"rollgate_flag_request_duration_seconds_count{{{labels}}} 2.0" in histogram
    assert lines(latency_registry) == [counted("on", "error", "1.0"), counted("on", "ok", "1.0")]
    # Without the setting: no histogram.
    Client().get("/ok/", {"user": "7"})
    assert "rollgate_flag_request_duration_seconds" not in prometheus_client.generate_latest(registry).decode()


def test_the_registry_setting_as_a_dotted_path(registry):
    with override_settings(ROLLGATE_METRICS_REGISTRY="test_django_metrics.DOTTED_REGISTRY"):
        Client().get("/ok/", {"user": "7"})
    assert lines(DOTTED_REGISTRY) == [counted("on", "ok", "1.0")]
    assert lines(registry) == []


def test_one_metrics_object_per_registry(registry):
    assert metrics_from_settings() is metrics_from_settings()
    with override_settings(ROLLGATE_METRICS_LATENCY=True):
        with pytest.raises(ImproperlyConfigured, match="ROLLGATE_METRICS_LATENCY is True but the metrics"):
            metrics_from_settings()


def test_the_default_registry_is_prometheus_clients():
    from django.conf import settings

    from rollgate.django.middleware import _registry_setting

    assert not hasattr(settings, "ROLLGATE_METRICS_REGISTRY")
    assert _registry_setting() is prometheus_client.REGISTRY


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"ROLLGATE_METRICS_LATENCY": "yes"}, "ROLLGATE_METRICS_LATENCY must be True or False, not 'yes'"),
        ({"ROLLGATE_METRICS_REGISTRY": "no.such.module.REGISTRY"}, "'no.such.module.REGISTRY' cannot be imported"),
        ({"ROLLGATE_METRICS_REGISTRY": "test_django_metrics.AB"}, "is a list, not a CollectorRegistry"),
        ({"ROLLGATE_METRICS_REGISTRY": 42}, "must be a CollectorRegistry or a dotted path to one, not a int"),
    ],
)
def test_bad_settings_are_named(settings, message):
    with override_settings(**settings):
        with pytest.raises(ImproperlyConfigured, match=message):
            CohortMetricsMiddleware(lambda request: HttpResponse())
