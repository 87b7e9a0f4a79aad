"""Parsing and checking the flag document: errors, never crashes; the Rust SDK's rules."""

import json

import pytest

import rollgate
from conftest import document, flag_entry
from rollgate import FlagDocumentError, parse_document


def test_parses_a_full_entry_and_ignores_unknown_fields():
    flags = parse_document(
        json.dumps(
            {
                "schemaVersion": 1,
                "futureTopLevel": True,
                "flags": {
                    "exp": {
                        "key": "exp",
                        "enabled": True,
                        "percent": 30,
                        "allowedUsers": ["vip"],
                        "variants": [{"name": "control", "weight": 50, "color": "x"}, {"name": "t", "weight": 50.0}],
                        "experiment": {"coverage": 30.5, "salt": "s1", "extra": 1},
                        "shippedVariant": None,
                        "phase": "Experimenting",
                        "generation": 4,
                        "updatedAt": "2025-01-01T00:00:00Z",
                        "somethingNew": {"nested": [1]},
                    }
                },
            }
        ).encode()
    )
    entry = flags["exp"]
    assert entry.percent == 30.0 and isinstance(entry.percent, float)
    assert entry.allowed_users == ("vip",)
    assert [v.name for v in entry.variants] == ["control", "t"]
    assert entry.experiment == rollgate.document.ExperimentAssignment(30.5, "s1")
    assert entry.shipped_variant is None and entry.generation == 4


def test_defaults_for_optional_fields():
    entry = parse_document(document(flag_entry("a", percent=5.5)))["a"]
    assert entry.allowed_users == () and entry.variants == () and entry.experiment is None
    assert (entry.phase, entry.generation, entry.updated_at) == ("", 0, "")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"{", "malformed flag document"),
        (b"", "malformed flag document"),
        (b"[]", "expected an object"),
        (b"null", "expected an object"),
        (b"\xff", "not UTF-8"),
        ('{"schemaVersion": 1, "flags": {}}'.encode("utf-16"), "not UTF-8"),
        (b'\xef\xbb\xbf{"schemaVersion": 1, "flags": {}}', "BOM"),
        (b'{"flags": {}}', "schemaVersion: missing field"),
        (b'{"schemaVersion": "1", "flags": {}}', "expected a positive integer"),
        (b'{"schemaVersion": 1.0, "flags": {}}', "expected a positive integer"),
        (b'{"schemaVersion": true, "flags": {}}', "expected a positive integer"),
        (b'{"schemaVersion": -1, "flags": {}}', "expected a positive integer"),
        (b'{"schemaVersion": 3, "flags": {}}', "unsupported flag document schemaVersion 3"),
        (b'{"schemaVersion": 0, "flags": {"a": 5}}', "schemaVersion 0"),
        (b'{"schemaVersion": 1}', "flags: missing field"),
        (b'{"schemaVersion": 1, "flags": []}', "flags: expected an object"),
        (b'{"schemaVersion": 1, "flags": {"a": 1}}', "flags.a: expected an object"),
        (b'{"schemaVersion": 1, "flags": {"a": {"key": "a"}}}', "flags.a.enabled: missing field"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":1,"percent":1}}}', "expected a boolean"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":true}}}', "expected a number"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":"5"}}}', "expected a number"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":NaN}}}', "NaN is not valid JSON"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":Infinity}}}', "Infinity"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1e999}}}', "outside 0..100"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,"allowedUsers":null}}}', "array"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,"allowedUsers":[7]}}}', "string"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,"allowedUsers":["\\ud800"]}}}', "surrogate"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,"generation":1.5}}}', "64-bit integer"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"b","enabled":true,"percent":1}}}', "they must match"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":101}}}', "flags.a.percent"),
        (b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":-1}}}', "outside 0..100"),
        (
            b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,'
            b'"variants":[{"name":"x","weight":60},{"name":"y","weight":30}]}}}',
            "sum to 100, got 90",
        ),
        (
            b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,'
            b'"variants":[{"name":"x","weight":110},{"name":"y","weight":-10}]}}}',
            "non-negative",
        ),
        (
            b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,'
            b'"variants":[{"name":"x","weight":100}],"experiment":{"coverage":120,"salt":"s"}}}}',
            "experiment.coverage",
        ),
        (
            b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,'
            b'"variants":[{"name":"x","weight":100}],"experiment":{"coverage":20}}}}',
            "salt: missing field",
        ),
        (
            b'{"schemaVersion":1,"flags":{"a":{"key":"a","enabled":true,"percent":1,'
            b'"variants":[{"name":"x","weight":100}],"shippedVariant":"z"}}}',
            "shippedVariant",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "malformed flag document"),
    ],
)
def test_unusable_documents_are_errors_not_crashes(data, message):
    with pytest.raises(FlagDocumentError) as error:
        parse_document(data)
    assert message in str(error.value)


def test_weights_are_summed_left_to_right_like_rust():
    # 0.1 + 0.2 + ... accumulates rounding error; within 1e-6 of 100 it is accepted.
    variants = [{"name": f"v{i}", "weight": 0.1} for i in range(999)] + [{"name": "last", "weight": 0.1}]
    flags = parse_document(document(flag_entry("a", variants=variants)))
    assert len(flags["a"].variants) == 1000


def test_flag_set_from_json():
    flag_set = rollgate.FlagSet.from_json(document(flag_entry("a"), flag_entry("b", enabled=False)))
    assert sorted(flag_set) == ["a", "b"] and len(flag_set) == 2
    assert flag_set.evaluate("a", None).reason == "full-rollout"
    assert flag_set.evaluate("b", "u").reason == "disabled"
    assert flag_set.evaluate("c", "u").reason == "missing"
