"""sdk/flag-document.schema.json describes what is published: the example document and every
flag of the shared vectors satisfy it, and it refuses what the SDKs refuse."""

import copy
import json

import jsonschema
import pytest

from conftest import REPO_ROOT, load_vectors

SCHEMA = json.loads((REPO_ROOT / "sdk" / "flag-document.schema.json").read_text(encoding="utf-8"))
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)


def errors(document):
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(document)]


def test_the_schema_itself_is_valid():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_the_published_example_satisfies_the_schema():
    path = REPO_ROOT / "examples" / "published" / "flags.json"
    assert errors(json.loads(path.read_text(encoding="utf-8"))) == []


def test_every_vector_flag_satisfies_the_schema():
    flags = [case["flag"] for case in load_vectors()["evaluation"] if case["flag"] is not None]
    assert len(flags) > 1000
    for flag in flags:
        assert errors({"schemaVersion": 1, "flags": {flag["key"]: flag}}) == [], flag


def test_every_targeting_vector_document_satisfies_the_schema():
    cases = load_vectors()["targeting"]
    for case in cases:
        flag = case["flag"]
        document = {"schemaVersion": 2, "flags": {flag["key"]: flag}, "segments": case["segments"]}
        assert errors(document) == [], flag["key"]


ENTRY = {
    "key": "checkout",
    "enabled": True,
    "percent": 5,
    "allowedUsers": [],
    "variants": [],
    "phase": "Progressing",
    "generation": 3,
    "updatedAt": "2026-11-24T08:00:00Z",
}


@pytest.mark.parametrize(
    "change, where",
    [
        (lambda e: e.pop("phase"), "flags/checkout"),
        (lambda e: e.update(percent=101), "flags/checkout/percent"),
        (lambda e: e.update(allowedUsers=["a", "a"]), "flags/checkout/allowedUsers"),
        (lambda e: e.update(key="Bad_Key"), "flags/checkout/key"),
        (lambda e: e.update(variants=[{"name": "a"}]), "flags/checkout/variants/0"),
    ],
)
def test_the_schema_refuses_malformed_entries(change, where):
    entry = copy.deepcopy(ENTRY)
    change(entry)
    found = errors({"schemaVersion": 1, "flags": {"checkout": entry}})
    assert any(line.startswith(where + ":") for line in found), found


def test_the_schema_refuses_an_unknown_version():
    assert errors({"schemaVersion": 3, "flags": {}}) != []
