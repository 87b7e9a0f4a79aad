#!/usr/bin/env python3
"""A tiny stand-in for a service behind a feature flag, for scripts/demo.

It serves no real traffic: it simulates a steady ~50 requests per second and exposes them as
Prometheus counters on 127.0.0.1, so that a real Prometheus can scrape them and Rollgate can
guard a ramp on their error ratio. Python 3 standard library only.

    GET  /metrics                 http_requests_total{code="200"|"500",job="demo"}
    GET  /error-rate              the current error fraction, e.g. 0.01
    POST /error-rate?value=0.3    set the error fraction (0..1) from now on
    GET  /healthz                 ok

The counters grow from elapsed wall-clock time, so they are exact whenever they are scraped:
between t0 and t1 the service adds rate * (t1 - t0) requests, a fraction `error rate` of them
with code 500. Usage:

    demo-service.py [--port 0] [--port-file FILE] [--rate 50] [--error-rate 0.01]

With --port 0 (the default) the kernel picks a free port; --port-file receives it once the
socket listens, so the caller never races for a port.
"""

import argparse
import math
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class Traffic:
    """Simulated request counters; thread-safe."""

    def __init__(self, rate, error_rate):
        self.rate = rate
        self.error_rate = error_rate
        self.ok = 0.0
        self.errors = 0.0
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def _advance(self):
        now = time.monotonic()
        requests = self.rate * (now - self.last)
        self.errors += requests * self.error_rate
        self.ok += requests * (1.0 - self.error_rate)
        self.last = now

    def set_error_rate(self, value):
        with self.lock:
            # Everything before now was served at the old rate.
            self._advance()
            self.error_rate = value

    def snapshot(self):
        with self.lock:
            self._advance()
            return math.floor(self.ok), math.floor(self.errors), self.error_rate


class Handler(BaseHTTPRequestHandler):
    server_version = "rollgate-demo-service"
    traffic = None  # set in main()

    def _send(self, status, body, content_type="text/plain; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = urlsplit(self.path).path
        if path == "/metrics":
            ok, errors, _ = self.traffic.snapshot()
            self._send(
                200,
                "# HELP http_requests_total Requests served by the demo service.\n"
                "# TYPE http_requests_total counter\n"
                f'http_requests_total{{code="200",job="demo"}} {ok}\n'
                f'http_requests_total{{code="500",job="demo"}} {errors}\n',
                "text/plain; version=0.0.4; charset=utf-8",
            )
        elif path == "/error-rate":
            self._send(200, f"{self.traffic.snapshot()[2]}\n")
        elif path == "/healthz":
            self._send(200, "ok\n")
        else:
            self._send(404, "not found\n")

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path != "/error-rate":
            self._send(404, "not found\n")
            return
        values = parse_qs(url.query).get("value", [])
        try:
            value = float(values[0])
        except (IndexError, ValueError):
            self._send(400, "usage: POST /error-rate?value=0.3\n")
            return
        if not 0.0 <= value <= 1.0:
            self._send(400, f"value {value} is outside 0..1\n")
            return
        self.traffic.set_error_rate(value)
        self._send(200, f"{value}\n")

    def log_message(self, format, *args):
        pass  # quiet: Prometheus scrapes every second


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the port here once listening")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second")
    parser.add_argument("--error-rate", type=float, default=0.01, help="error fraction 0..1")
    args = parser.parse_args()
    if not 0.0 <= args.error_rate <= 1.0:
        parser.error("--error-rate must be within 0..1")

    Handler.traffic = Traffic(args.rate, args.error_rate)
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
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
        server.server_close()


if __name__ == "__main__":
    main()
