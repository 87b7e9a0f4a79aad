#!/usr/bin/env python3
"""A checkout service behind the flag `new-checkout`, for docs/first-hour.md.

It reads the flags with the Rollgate Python SDK (`import rollgate`) from the file the
ConfigMap is mounted as (ROLLGATE_FLAGS_PATH, default /etc/rollgate/flags.json), and
simulates its own traffic so that Prometheus has something to judge: about --rate requests
a second from random users, each routed to the new or the old checkout by the flag. The new
checkout fails a fraction of its requests that you set at run time. Standard library only,
apart from the SDK.

    GET  /?user=ID              which checkout ID gets: "new" or "old"
    GET  /metrics               http_requests_total{checkout,code} and
                                http_request_duration_seconds (a histogram)
    POST /error-rate?value=0.5  the new checkout fails this fraction of its requests from now on
    GET  /healthz               "ok" once a good flag document was read, else 503

Usage: checkout.py [--host 127.0.0.1] [--port 8000] [--rate 20] [--error-rate 0]
"""

import argparse
import bisect
import random
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import rollgate

FLAG = "new-checkout"
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Stats:
    """Request counters and a latency histogram, as Prometheus exposes them; thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        # Every series exists from the start, at 0. A 5xx counter that appeared only with the
        # first error would leave the error-ratio query of examples/ramp.yaml without data
        # (an empty numerator), and the analysis would hold instead of passing.
        self.requests = {(c, code): 0 for c in ("new", "old") for code in ("200", "500")}
        self.bucket_counts = [0] * len(BUCKETS)
        self.count = 0
        self.total = 0.0

    def record(self, checkout, code, seconds):
        with self.lock:
            self.requests[(checkout, code)] += 1
            index = bisect.bisect_left(BUCKETS, seconds)
            if index < len(BUCKETS):
                self.bucket_counts[index] += 1
            self.count += 1
            self.total += seconds

    def exposition(self):
        with self.lock:
            lines = [
                "# HELP http_requests_total Requests served, by checkout and status code.",
                "# TYPE http_requests_total counter",
            ]
            for (checkout, code), value in sorted(self.requests.items()):
                lines.append(
                    f'http_requests_total{{checkout="{checkout}",code="{code}"}} {value}'
                )
            lines += [
                "# HELP http_request_duration_seconds Time to serve a request.",
                "# TYPE http_request_duration_seconds histogram",
            ]
            cumulative = 0
            for bound, value in zip(BUCKETS, self.bucket_counts):
                cumulative += value
                lines.append(f'http_request_duration_seconds_bucket{{le="{bound}"}} {cumulative}')
            lines.append(f'http_request_duration_seconds_bucket{{le="+Inf"}} {self.count}')
            lines.append(f"http_request_duration_seconds_sum {self.total}")
            lines.append(f"http_request_duration_seconds_count {self.count}")
            return "\n".join(lines) + "\n"


class Traffic(threading.Thread):
    """Simulated users, each asking the flag which checkout they get."""

    def __init__(self, stats, rate, error_rate):
        super().__init__(name="traffic", daemon=True)
        self.stats = stats
        self.rate = rate
        self.error_rate = error_rate
        self.random = random.Random()

    def run(self):
        while True:
            user = f"user-{self.random.randrange(100_000)}"
            new = rollgate.flag_enabled(FLAG, user)
            checkout = "new" if new else "old"
            failed = new and self.random.random() < self.error_rate
            seconds = self.random.uniform(0.02, 0.2 if new else 0.15)
            self.stats.record(checkout, "500" if failed else "200", seconds)
            time.sleep(1.0 / self.rate)


class Handler(BaseHTTPRequestHandler):
    server_version = "rollgate-first-hour-checkout"
    stats = None  # set in main()
    traffic = None

    def _send(self, status, body, content_type="text/plain; charset=utf-8"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/metrics":
            self._send(200, self.stats.exposition(), "text/plain; version=0.0.4; charset=utf-8")
        elif url.path == "/healthz":
            health = rollgate.default_client().health()
            self._send(200 if health["ok"] else 503, f"{health}\n")
        elif url.path == "/":
            user = parse_qs(url.query).get("user", [None])[0]
            self._send(200, ("new" if rollgate.flag_enabled(FLAG, user) else "old") + "\n")
        else:
            self._send(404, "not found\n")

    def do_POST(self):
        url = urlsplit(self.path)
        if url.path != "/error-rate":
            self._send(404, "not found\n")
            return
        try:
            value = float(parse_qs(url.query)["value"][0])
        except (KeyError, IndexError, ValueError):
            self._send(400, "usage: POST /error-rate?value=0.5\n")
            return
        if not 0.0 <= value <= 1.0:
            self._send(400, f"value {value} is outside 0..1\n")
            return
        self.traffic.error_rate = value
        self._send(200, f"the new checkout now fails {value:.0%} of its requests\n")

    def log_message(self, format, *args):
        pass  # Prometheus scrapes every 15 s; no access log


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--rate", type=float, default=20.0, help="simulated requests per second")
    parser.add_argument("--error-rate", type=float, default=0.0, help="new checkout's error fraction")
    args = parser.parse_args()
    if not 0.0 <= args.error_rate <= 1.0:
        parser.error("--error-rate must be within 0..1")

    stats = Stats()
    traffic = Traffic(stats, args.rate, args.error_rate)
    Handler.stats = stats
    Handler.traffic = traffic
    traffic.start()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    server.daemon_threads = True
    print(
        f"checkout on http://{args.host}:{server.server_address[1]}, flags from "
        f"{rollgate.default_path()}",
        file=sys.stderr,
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
