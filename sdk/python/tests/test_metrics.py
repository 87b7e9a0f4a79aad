"""Cohort-labelled request metrics: the request scope, what Flags records into it, and the
exact Prometheus exposition."""

import asyncio
import threading

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

import rollgate  # noqa: E402
from conftest import document, flag_entry  # noqa: E402
from rollgate.metrics import CohortMetrics, cohort_of, current_scope  # noqa: E402

AB = [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}]


@pytest.fixture
def flags(tmp_path):
    path = tmp_path / "flags.json"
    path.write_text(
        document(
            flag_entry("everyone"),
            flag_entry("nobody", percent=0),
            flag_entry("vip", percent=0, allowedUsers=["7"]),
            flag_entry("ab", variants=AB),
            flag_entry("killed", enabled=False),
        ),
        encoding="utf-8",
    )
    return rollgate.Flags(path)


@pytest.fixture
def registry():
    return prometheus_client.CollectorRegistry()


@pytest.fixture
def metrics(registry):
    return CohortMetrics(registry=registry)


def request_lines(registry, name="rollgate_flag_requests_total"):
    """The exposition's sample lines of one metric family."""
    text = prometheus_client.generate_latest(registry).decode()
    return sorted(line for line in text.splitlines() if line.startswith(name + "{"))


def test_cohorts_on_off_and_variant(flags, metrics, registry):
    arm = flags.variant("ab", "3")  # outside a scope: records nothing
    assert arm in ("control", "treatment")
    with metrics.request() as scope:
        assert flags.flag_enabled("everyone", "3")
        assert not flags.flag_enabled("nobody", "3")
        assert not flags.flag_enabled("killed", "3")
        assert flags.flag_enabled("ab", "3")  # a bool, but the cohort is the variant
        assert flags.evaluate("missing", "3").reason == "missing"
    # A key missing from the document is not recorded (it would let callers add series).
    assert scope.cohorts == {"everyone": "on", "nobody": "off", "killed": "off", "ab": arm}
    assert request_lines(registry) == sorted(
        [
            f'rollgate_flag_requests_total{{cohort="{arm}",flag="ab",outcome="ok"}} 1.0',
            'rollgate_flag_requests_total{cohort="off",flag="killed",outcome="ok"} 1.0',
            'rollgate_flag_requests_total{cohort="off",flag="nobody",outcome="ok"} 1.0',
            'rollgate_flag_requests_total{cohort="on",flag="everyone",outcome="ok"} 1.0',
        ]
    )


def test_cohort_of():
    assert cohort_of(rollgate.Evaluation(True, None, "percent", 5)) == "on"
    assert cohort_of(rollgate.Evaluation(False, None, "percent", 9000)) == "off"
    assert cohort_of(rollgate.Evaluation(True, "treatment", "percent", 5)) == "treatment"
    assert cohort_of(rollgate.Evaluation(True, "blue", "shipped", None)) == "blue"


@pytest.mark.parametrize(
    "call, cohorts",
    [
        (lambda flags: flags.flag_enabled("vip", "7"), {"vip": "on"}),
        (lambda flags: flags.variant("vip", "7"), {"vip": "on"}),
        (lambda flags: flags.evaluate("vip", "7"), {"vip": "on"}),
        # A one-pass iterable: recording must not consume the keys a second time.
        (lambda flags: flags.flags_enabled(iter(["vip", "nobody"]), "7"), {"vip": "on", "nobody": "off"}),
        (lambda flags: flags.evaluate_many(["vip", "nobody"], "7"), {"vip": "on", "nobody": "off"}),
    ],
    ids=["flag_enabled", "variant", "evaluate", "flags_enabled", "evaluate_many"],
)
def test_every_evaluation_method_records(flags, metrics, call, cohorts):
    with metrics.request() as scope:
        call(flags)
    assert scope.cohorts == cohorts


def test_the_first_answer_for_a_flag_counts(flags, metrics, registry):
    with metrics.request() as scope:
        assert flags.flag_enabled("vip", "7")
        assert not flags.flag_enabled("vip", "8")  # another user, later in the same request
        with rollgate.override_flag("vip", active=False):
            assert not flags.evaluate("vip", "7")
    assert scope.cohorts == {"vip": "on"}
    assert request_lines(registry) == ['rollgate_flag_requests_total{cohort="on",flag="vip",outcome="ok"} 1.0']


def test_overrides_are_recorded_with_their_variant(flags, metrics):
    with rollgate.override_flag("nobody", active=True, variant="treatment"):
        with metrics.request() as scope:
            flags.flag_enabled("nobody", "1")
    assert scope.cohorts == {"nobody": "treatment"}


def test_no_scope_records_nothing(flags, metrics, registry):
    assert current_scope() is None
    flags.flag_enabled("everyone", "1")
    flags.evaluate_many(["everyone", "ab"], "1")
    assert request_lines(registry) == []
    with metrics.request() as scope:
        assert current_scope() is scope
    assert current_scope() is None
    assert request_lines(registry) == []  # a request that evaluated no flag counts nowhere


def test_module_level_helpers_record(flags, metrics, monkeypatch):
    monkeypatch.setenv("ROLLGATE_FLAGS_PATH", flags.path)
    rollgate.reset_default_client()
    with metrics.request() as scope:
        rollgate.flag_enabled("vip", 7)
        rollgate.variant("nobody", 7)
        rollgate.flags_enabled(["everyone"], 7)
    assert scope.cohorts == {"vip": "on", "nobody": "off", "everyone": "on"}


def test_fail_finish_and_exceptions_set_the_outcome(flags, metrics, registry):
    with metrics.request() as scope:
        flags.flag_enabled("everyone", "1")
        scope.fail()
    assert scope.outcome == "error"
    with pytest.raises(KeyError):
        with metrics.request():
            flags.flag_enabled("everyone", "1")
            raise KeyError("boom")
    with metrics.request() as scope:
        flags.flag_enabled("everyone", "1")
        scope.finish("ok")
        flags.flag_enabled("nobody", "1")  # after finish: no longer part of the request
    assert scope.cohorts == {"everyone": "on"}
    assert request_lines(registry) == [
        'rollgate_flag_requests_total{cohort="on",flag="everyone",outcome="error"} 2.0',
        'rollgate_flag_requests_total{cohort="on",flag="everyone",outcome="ok"} 1.0',
    ]


def test_a_cancelled_request_counts_nowhere(flags, metrics, registry):
    async def handler():
        with metrics.request():
            flags.flag_enabled("everyone", "1")
            await asyncio.sleep(10)

    async def main():
        task = asyncio.ensure_future(handler())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert request_lines(registry) == []


def test_scopes_are_per_task_and_per_thread(flags, metrics):
    async def one(user):
        with metrics.request() as scope:
            await asyncio.sleep(0)
            flags.flag_enabled("vip", user)
            await asyncio.sleep(0)
        return scope.cohorts

    async def both():
        return await asyncio.gather(one("7"), one("8"))

    assert asyncio.run(both()) == [{"vip": "on"}, {"vip": "off"}]

    with metrics.request() as scope:
        other_thread = threading.Thread(target=flags.flag_enabled, args=("everyone", "1"))
        other_thread.start()
        other_thread.join()
    assert scope.cohorts == {}  # a plain thread has its own context


def test_misuse_is_an_error(flags, metrics):
    with metrics.request():
        with pytest.raises(RuntimeError, match="already open"):
            with metrics.request():
                pass
    scope = metrics.request()
    with pytest.raises(RuntimeError, match="not entered"):
        scope.finish()
    with scope:
        with pytest.raises(ValueError, match="'ok' or 'error', not 'fine'"):
            scope.finish("fine")
        scope.finish("error")
        with pytest.raises(RuntimeError, match="already finished"):
            scope.finish()
    with pytest.raises(RuntimeError, match="entered once"):
        with scope:
            pass


def test_a_registry_takes_one_cohort_metrics(registry):
    CohortMetrics(registry=registry)
    with pytest.raises(ValueError, match="rollgate_flag_requests is already registered"):
        CohortMetrics(registry=registry)
    with pytest.raises(ValueError, match="latency=True"):
        CohortMetrics(registry=prometheus_client.CollectorRegistry(), buckets=[0.1])


def test_a_failed_histogram_registration_leaves_the_registry_as_it_was(registry):
    prometheus_client.Gauge("rollgate_flag_request_duration_seconds", "taken", registry=registry)
    with pytest.raises(ValueError, match="rollgate_flag_request_duration_seconds is already registered"):
        CohortMetrics(registry=registry, latency=True)
    CohortMetrics(registry=registry)  # the counter was unregistered again


def test_bad_buckets_are_prometheus_clients_error(registry):
    with pytest.raises(ValueError, match="Buckets not in sorted order"):
        CohortMetrics(registry=registry, latency=True, buckets=[1.0, 0.5])
    CohortMetrics(registry=registry)


def test_the_default_registry(flags):
    metrics = CohortMetrics()
    try:
        with metrics.request():
            flags.flag_enabled("vip", "7")
        labels = {"flag": "vip", "cohort": "on", "outcome": "ok"}
        assert prometheus_client.REGISTRY.get_sample_value("rollgate_flag_requests_total", labels) == 1.0
    finally:
        prometheus_client.REGISTRY.unregister(metrics.requests)


def test_latency_histogram(flags, registry):
    metrics = CohortMetrics(registry=registry, latency=True, buckets=[0.05, 1.0])
    with metrics.request():
        flags.flag_enabled("vip", "7")
    with metrics.request():
        flags.flag_enabled("vip", "8")
        flags.flag_enabled("ab", "8")
    text = prometheus_client.generate_latest(registry).decode()
    lines = [line for line in text.splitlines() if line.startswith("rollgate_flag_request_duration_seconds_")]
    arm = flags.variant("ab", "8")
    for flag, cohort in (("vip", "on"), ("vip", "off"), ("ab", arm)):
        labels = f'cohort="{cohort}",flag="{flag}"'
        for bucket in ("0.05", "1.0", "+Inf"):
            assert f'rollgate_flag_request_duration_seconds_bucket{{{labels},le="{bucket}"}} 1.0' in lines
        assert f"rollgate_flag_request_duration_seconds_count{{{labels}}} 1.0" in lines
        (total,) = [line for line in lines if line.startswith(f"rollgate_flag_request_duration_seconds_sum{{{labels}}}")]
        assert 0.0 < float(total.split()[-1]) < 0.05
    assert len([line for line in lines if "_count{" in line]) == 3
