#!/usr/bin/env python3
"""A tiny stand-in for a service behind a feature flag, for scripts/demo.

It serves no real traffic: a background thread simulates --rate requests per second in real
time and /metrics exposes them as Prometheus counters on 127.0.0.1, so that a real
Prometheus can scrape them and Rollgate can guard a ramp on their error ratio.

    GET  /metrics                         http_requests_total{code="200"|"500",job="demo"};
                                          with --flags-file also the SDK's
                                          rollgate_flag_requests_total{flag,cohort,outcome}
    GET  /error-rate[?cohort=on]          the error fraction of everyone (or of one cohort)
    POST /error-rate?value=0.3            every request fails with 0.3 from now on
    POST /error-rate?value=0.3&cohort=on  only requests in cohort "on" (the flag's treatment
                                          users; or "off", or a variant) fail with 0.3
    GET  /healthz                         ok

Usage:

    demo-service.py [--port 0] [--port-file FILE] [--rate 50] [--error-rate 0.01]
                    [--flags-file flags.json --flag KEY [--users 100000]]

With --flags-file (the published flags.json) and --flag, each simulated request is for a
random user `user-<n>` (n < --users) and goes through the Python SDK exactly as a service's
would: it opens a rollgate.metrics request scope, evaluates --flag with rollgate.Flags, and
fails with the error fraction of the cohort it landed in. The counts are the SDK's own
rollgate_flag_requests_total. This needs prometheus-client and the rollgate SDK (this
checkout's sdk/python/src is used): run it with ~/.cache/rollgate/venv/bin/python, which
scripts/test-python sets up. Without --flags-file the standard library is enough and every
request fails with the global error fraction. A POST without `cohort` sets everyone's
fraction and clears the per-cohort ones.

With --port 0 (the default) the kernel picks a free port; --port-file receives it once the
socket listens, so the caller never races for a port.
"""

import argparse
import logging
import math
import os
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

# Simulated requests are served in batches this often: 20 wake-ups a second whatever the rate.
TICK_SECONDS = 0.05
SDK_SOURCE = Path(__file__).resolve().parent.parent / "sdk" / "python" / "src"


class Traffic:
    """Simulated requests and their counters; thread-safe.

    With ``flags`` (a rollgate.Flags) and ``cohort_metrics`` (a rollgate.metrics.CohortMetrics)
    every request evaluates ``flag`` for a random user in a request scope.
    """

    def __init__(self, rate, error_rate, flag=None, flags=None, cohort_metrics=None, users=100_000):
        self.rate = rate
        self.flag = flag
        self.flags = flags
        self.cohort_metrics = cohort_metrics
        self.users = users
        self.ok = 0
        self.errors = 0
        self.error_rate = error_rate
        self.cohort_error_rates = {}  # cohort → fraction, over error_rate
        self.lock = threading.Lock()
        self.random = random.Random()  # only the simulation thread draws from it

    def set_error_rate(self, value, cohort=None):
        with self.lock:
            if cohort is None:
                self.error_rate = value
                self.cohort_error_rates.clear()
            else:
                self.cohort_error_rates[cohort] = value

    def error_rate_for(self, cohort=None):
        with self.lock:
            return self.cohort_error_rates.get(cohort, self.error_rate)

    def serve_one(self):
        if self.flags is None:
            failed = self.random.random() < self.error_rate_for()
        else:
            user = f"user-{self.random.randrange(self.users)}"
            with self.cohort_metrics.request() as scope:
                self.flags.flag_enabled(self.flag, user)  # what a real handler would ask
                # None until the flag is published: the SDK does not count unknown keys.
                cohort = scope.cohorts.get(self.flag)
                failed = self.random.random() < self.error_rate_for(cohort)
                if failed:
                    scope.fail()
        with self.lock:
            if failed:
                self.errors += 1
            else:
                self.ok += 1

    def run(self, stop):
        """Serves rate·elapsed requests in total, catching up every tick, until ``stop`` is set."""
        started = time.monotonic()
        served = 0
        while not stop.wait(TICK_SECONDS):
            due = math.floor(self.rate * (time.monotonic() - started))
            while served < due:
                self.serve_one()
                served += 1

    def snapshot(self):
        with self.lock:
            return self.ok, self.errors, self.error_rate


class Handler(BaseHTTPRequestHandler):
    server_version = "rollgate-demo-service"
    traffic = None  # set in main()
    registry = None  # the prometheus_client registry of the SDK's metrics, with --flags-file

    def _send(self, status, body, content_type="text/plain; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _query(self, query, allowed):
        """The query's parameters, one value each; None after answering 400 for anything else."""
        params = parse_qs(query, keep_blank_values=True)
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            self._send(400, f"unknown parameter {unknown[0]!r}; this endpoint takes {', '.join(allowed)}\n")
            return None
        repeated = sorted(name for name, values in params.items() if len(values) > 1)
        if repeated:
            self._send(400, f"parameter {repeated[0]!r} is given more than once\n")
            return None
        return {name: values[0] for name, values in params.items()}

    def _cohort(self, params):
        """The ``cohort`` parameter, or None when absent; False after answering 400."""
        cohort = params.get("cohort")
        if cohort is None:
            return None
        if cohort == "":
            self._send(400, "cohort is empty; use on, off or a variant name\n")
            return False
        if self.traffic.flags is None:
            self._send(400, "cohort needs a flag: start demo-service.py with --flags-file and --flag\n")
            return False
        return cohort

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/metrics":
            ok, errors, _ = self.traffic.snapshot()
            body = (
                "# HELP http_requests_total Requests served by the demo service.\n"
                "# TYPE http_requests_total counter\n"
                f'http_requests_total{{code="200",job="demo"}} {ok}\n'
                f'http_requests_total{{code="500",job="demo"}} {errors}\n'
            )
            if self.registry is not None:
                from prometheus_client import generate_latest

                body += generate_latest(self.registry).decode()
            self._send(200, body, "text/plain; version=0.0.4; charset=utf-8")
        elif url.path == "/error-rate":
            params = self._query(url.query, ["cohort"])
            if params is None:
                return
            cohort = self._cohort(params)
            if cohort is False:
                return
            self._send(200, f"{self.traffic.error_rate_for(cohort)}\n")
        elif url.path == "/healthz":
            self._send(200, "ok\n")
        else:
            self._send(404, "not found\n")

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path != "/error-rate":
            self._send(404, "not found\n")
            return
        params = self._query(url.query, ["value", "cohort"])
        if params is None:
            return
        try:
            value = float(params["value"])
        except (KeyError, ValueError):
            self._send(400, "usage: POST /error-rate?value=0.3[&cohort=on]\n")
            return
        if not 0.0 <= value <= 1.0:
            self._send(400, f"value {value} is outside 0..1\n")
            return
        cohort = self._cohort(params)
        if cohort is False:
            return
        self.traffic.set_error_rate(value, cohort)
        self._send(200, f"{value}\n")

    def log_message(self, format, *args):
        pass  # quiet: Prometheus scrapes every second


def load_sdk():
    """Imports prometheus_client and this checkout's rollgate SDK, or exits saying which is missing."""
    if SDK_SOURCE.is_dir():
        sys.path.insert(0, str(SDK_SOURCE))
    try:
        import prometheus_client
    except ImportError:
        sys.exit(
            f"demo-service: --flags-file needs prometheus-client, which {sys.executable} lacks; run it with"
            " ~/.cache/rollgate/venv/bin/python (scripts/test-python installs it there)"
            " or `pip install prometheus-client`"
        )
    try:
        import rollgate
        import rollgate.metrics
    except ImportError as error:
        sys.exit(f"demo-service: --flags-file needs the rollgate SDK, expected in {SDK_SOURCE}: {error}")
    return rollgate, prometheus_client


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--rate", type=float, default=50.0, help="simulated requests per second")
    parser.add_argument("--error-rate", type=float, default=0.01, help="error fraction 0..1 of every request")
    parser.add_argument("--flags-file", help="the published flags.json, read with rollgate.Flags")
    parser.add_argument("--flag", help="the flag key every simulated request evaluates (with --flags-file)")
    parser.add_argument("--users", type=int, default=100_000, help="simulated users: user-0 .. user-<N-1>")
    args = parser.parse_args()
    if not 0.0 <= args.error_rate <= 1.0:
        parser.error("--error-rate must be within 0..1")
    if not (math.isfinite(args.rate) and args.rate >= 0.0):
        parser.error("--rate must be a finite number of requests per second, 0 or more")
    if args.users < 1:
        parser.error("--users must be 1 or more")
    if (args.flags_file is None) != (args.flag is None):
        parser.error("--flags-file and --flag go together")
    if args.flag == "":
        parser.error("--flag is empty")

    if args.flags_file is None:
        traffic = Traffic(args.rate, args.error_rate)
    else:
        rollgate, prometheus_client = load_sdk()
        # The SDK logs each load, and why a document is unusable, on the `rollgate` logger.
        logging.basicConfig(level=logging.INFO, format="demo-service: %(message)s", stream=sys.stderr)
        flags = rollgate.Flags(args.flags_file)
        if flags.loaded and flags.flags.get(args.flag) is None:
            print(
                f"demo-service: warning: flag {args.flag!r} is not in {args.flags_file} (yet); until it is,"
                " no request is counted by cohort",
                file=sys.stderr,
            )
        Handler.registry = prometheus_client.CollectorRegistry()
        cohort_metrics = rollgate.metrics.CohortMetrics(registry=Handler.registry)
        traffic = Traffic(args.rate, args.error_rate, args.flag, flags, cohort_metrics, args.users)

    Handler.traffic = traffic
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    stop = threading.Event()
    simulation = threading.Thread(target=traffic.run, args=(stop,), name="simulated-requests", daemon=True)
    simulation.start()
    port = server.server_address[1]
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(f"{port}\n")
        os.replace(tmp, args.port_file)
    print(f"demo-service listening on http://{args.host}:{port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        server.server_close()


if __name__ == "__main__":
    main()
