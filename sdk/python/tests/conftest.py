import json
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
VECTORS_PATH = REPO_ROOT / "sdk" / "testdata" / "vectors.json"


def load_vectors():
    return json.loads(VECTORS_PATH.read_text(encoding="utf-8"))


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self, now=1000.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def flag_entry(key, percent=100, enabled=True, **fields):
    entry = {"key": key, "enabled": enabled, "percent": percent}
    entry.update(fields)
    return entry


def document(*entries, schema_version=1):
    return json.dumps({"schemaVersion": schema_version, "flags": {e["key"]: e for e in entries}})


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture(autouse=True)
def _fresh_default_client():
    import rollgate

    rollgate.reset_default_client()
    yield
    rollgate.reset_default_client()
