"""scripts/demo-service.py with a flags file: its cohort metrics come from the SDK, and a
treatment-only error rate shows up in cohort "on" alone."""

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from conftest import REPO_ROOT, document, flag_entry

pytest.importorskip("prometheus_client")
DEMO_SERVICE = REPO_ROOT / "scripts" / "demo-service.py"
if not DEMO_SERVICE.exists():
    pytest.skip(f"{DEMO_SERVICE} is not here (not a checkout of the repository)", allow_module_level=True)

SAMPLE = re.compile(r'^rollgate_flag_requests_total\{cohort="([^"]+)",flag="checkout",outcome="(ok|error)"\} (\S+)$')
HTTP_SAMPLE = re.compile(r'^http_requests_total\{code="(200|500)",job="demo"\} (\S+)$')


def http(method, url):
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def service(tmp_path, request):
    """The demo service on 127.0.0.1 with a 50% flag "checkout", no baseline errors; its URL.
    Parametrized with False, the document does not hold the flag yet."""
    published = getattr(request, "param", True)
    flags_file = tmp_path / "flags.json"
    entries = [flag_entry("checkout", percent=50)] if published else []
    flags_file.write_text(document(*entries), encoding="utf-8")
    port_file = tmp_path / "port"
    log = open(tmp_path / "demo-service.log", "w+")
    process = subprocess.Popen(
        [
            sys.executable,
            str(DEMO_SERVICE),
            "--port-file",
            str(port_file),
            "--flags-file",
            str(flags_file),
            "--flag",
            "checkout",
            "--rate",
            "200",
            "--error-rate",
            "0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while not (port_file.exists() and port_file.read_text().endswith("\n")):
            if process.poll() is not None:
                log.seek(0)
                pytest.fail(f"demo-service.py exited with {process.returncode}: {log.read()}")
            if time.monotonic() > deadline:
                pytest.fail("demo-service.py wrote no port file within 10 s")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{int(port_file.read_text())}"
    finally:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_a_treatment_only_error_rate_fails_cohort_on_only(service):
    assert http("POST", f"{service}/error-rate?value=0.5&cohort=on") == (200, "0.5\n")
    assert http("GET", f"{service}/error-rate?cohort=on") == (200, "0.5\n")
    assert http("GET", f"{service}/error-rate?cohort=off") == (200, "0.0\n")
    time.sleep(2)
    status, body = http("GET", f"{service}/metrics")
    assert status == 200
    counts = {}
    for line in body.splitlines():
        match = SAMPLE.match(line)
        if match:
            cohort, outcome, value = match.groups()
            assert float(value).is_integer(), line
            counts[cohort, outcome] = int(float(value))
    assert set(counts) <= {("on", "ok"), ("on", "error"), ("off", "ok")}, counts
    assert counts.get(("on", "error"), 0) > 0, counts
    assert counts.get(("off", "ok"), 0) > 0, counts
    assert ("off", "error") not in counts, counts
    # About 200/s for about 2 s, half of them in each cohort, half of "on" failing.
    total = sum(counts.values())
    assert 150 <= total <= 800, counts
    assert 0.25 <= counts["on", "error"] / (counts["on", "error"] + counts["on", "ok"]) <= 0.75, counts

    # The existing counters still count the same requests, as integers.
    http_counts = {}
    for line in body.splitlines():
        match = HTTP_SAMPLE.match(line)
        if match:
            http_counts[match.group(1)] = match.group(2)
    assert set(http_counts) == {"200", "500"}, body
    assert all(value.isdigit() for value in http_counts.values()), http_counts
    # Scraped a moment apart from the SDK's counters: close, not equal.
    assert abs(int(http_counts["500"]) - counts["on", "error"]) <= 10, (http_counts, counts)


@pytest.mark.parametrize("service", [False], indirect=True)
def test_before_the_flag_is_published_requests_are_served_and_not_counted_by_cohort(service):
    time.sleep(1.5)
    status, body = http("GET", f"{service}/metrics")
    assert status == 200
    assert not [line for line in body.splitlines() if SAMPLE.match(line)], body
    served = sum(int(m.group(2)) for m in map(HTTP_SAMPLE.match, body.splitlines()) if m)
    assert served > 0, body


def test_error_rate_for_everyone_clears_the_cohort_rates(service):
    assert http("POST", f"{service}/error-rate?value=0.3&cohort=on")[0] == 200
    assert http("POST", f"{service}/error-rate?value=0.1") == (200, "0.1\n")
    assert http("GET", f"{service}/error-rate") == (200, "0.1\n")
    assert http("GET", f"{service}/error-rate?cohort=on") == (200, "0.1\n")


@pytest.mark.parametrize(
    "query, message",
    [
        ("value=2", "value 2.0 is outside 0..1"),
        ("value=x", "usage: POST /error-rate?value=0.3[&cohort=on]"),
        ("cohort=on", "usage: POST /error-rate?value=0.3[&cohort=on]"),
        ("value=0.3&cohort=", "cohort is empty"),
        ("value=0.3&cohrt=on", "unknown parameter 'cohrt'"),
        ("value=0.3&value=0.4", "parameter 'value' is given more than once"),
    ],
)
def test_bad_error_rate_requests_are_refused(service, query, message):
    status, body = http("POST", f"{service}/error-rate?{query}")
    assert status == 400 and message in body, body


def test_flags_file_needs_prometheus_client_or_says_so(tmp_path):
    """Without prometheus_client importable, --flags-file stops with a message naming it."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "prometheus_client.py").write_text("raise ImportError('blocked for the test')\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, str(DEMO_SERVICE), "--flags-file", str(tmp_path / "flags.json"), "--flag", "checkout"],
        env={**os.environ, "PYTHONPATH": str(blocker)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "--flags-file needs prometheus-client" in result.stderr, result.stderr


def test_flags_file_and_flag_go_together(tmp_path):
    result = subprocess.run(
        [sys.executable, str(DEMO_SERVICE), "--flag", "checkout"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2 and "--flags-file and --flag go together" in result.stderr

