"""The flag document the operator publishes (``flags.json``), parsed and checked.

``{"schemaVersion": 1, "flags": {"<key>": {"key", "enabled", "percent", ...}}}``.
Acceptance follows the Rust SDK (``sdk/rust/src/document.rs``): the schema version is
checked first, then the shape of every entry, then the rules that cross fields. Unknown
fields are ignored so that an older SDK reads a newer operator's document.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

SCHEMA_VERSION = 1
_I64 = (-(2**63), 2**63 - 1)


class FlagDocumentError(ValueError):
    """The document cannot be used: not JSON, wrong shape, or a value out of range."""


class ShardError(FlagDocumentError):
    """``flags.json`` is the index of a sharded document and its shards do not make one: a
    shard is missing, or was written at another generation (a publish under way). Unlike
    other errors it may pass by itself, so the reader looks again."""


class Variant(NamedTuple):
    name: str
    weight: float


class ExperimentAssignment(NamedTuple):
    coverage: float
    salt: str


class FlagEntry(NamedTuple):
    key: str
    enabled: bool
    percent: float
    allowed_users: Tuple[str, ...] = ()
    variants: Tuple[Variant, ...] = ()
    experiment: Optional[ExperimentAssignment] = None
    shipped_variant: Optional[str] = None
    phase: str = ""
    generation: int = 0
    updated_at: str = ""


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; JSON (and the Rust SDK) does not.
    raise FlagDocumentError(f"malformed flag document: {name} is not valid JSON")


def _describe(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class _Fields:
    """Typed access to one JSON object, with the path for error messages."""

    def __init__(self, obj: Any, path: str) -> None:
        if not isinstance(obj, dict):
            raise FlagDocumentError(f"malformed flag document at {path}: expected an object, found {_describe(obj)}")
        self.obj = obj
        self.path = path

    def _error(self, name: str, message: str) -> FlagDocumentError:
        return FlagDocumentError(f"malformed flag document at {self.path}.{name}: {message}")

    def _get(self, name: str, required: bool) -> Any:
        if name not in self.obj:
            if required:
                raise self._error(name, "missing field")
            return _ABSENT
        return self.obj[name]

    def string(self, name: str, default: Any = None, required: bool = False, nullable: bool = False) -> Any:
        value = self._get(name, required)
        if value is _ABSENT or (nullable and value is None):
            return default
        if not isinstance(value, str):
            raise self._error(name, f"expected a string, found {_describe(value)}")
        _check_text(value, lambda message: self._error(name, message))
        return value

    def boolean(self, name: str) -> bool:
        value = self._get(name, True)
        if not isinstance(value, bool):
            raise self._error(name, f"expected a boolean, found {_describe(value)}")
        return value

    def number(self, name: str) -> float:
        value = self._get(name, True)
        return _number(value, lambda message: self._error(name, message))

    def integer(self, name: str, default: int) -> int:
        value = self._get(name, False)
        if value is _ABSENT:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not _I64[0] <= value <= _I64[1]:
            raise self._error(name, f"expected a 64-bit integer, found {value!r}")
        return value

    def array(self, name: str) -> List[Any]:
        value = self._get(name, False)
        if value is _ABSENT:
            return []
        if not isinstance(value, list):
            raise self._error(name, f"expected an array, found {_describe(value)}")
        return value

    def optional_object(self, name: str) -> Optional["_Fields"]:
        value = self._get(name, False)
        if value is _ABSENT or value is None:
            return None
        return _Fields(value, f"{self.path}.{name}")


_ABSENT = object()


def _number(value: Any, error) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error(f"expected a number, found {_describe(value)}")
    if isinstance(value, int) and abs(value) > 1e308:
        raise error("number out of range")
    return float(value)


def _check_text(value: str, error) -> None:
    # A lone surrogate (from a "\\ud800" escape) is not Unicode text; Rust rejects it.
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise error("string contains a lone surrogate") from None


def _entry(map_key: str, obj: Any) -> FlagEntry:
    fields = _Fields(obj, f"flags.{map_key}")
    allowed = []
    for index, user in enumerate(fields.array("allowedUsers")):
        if not isinstance(user, str):
            raise fields._error(f"allowedUsers[{index}]", f"expected a string, found {_describe(user)}")
        _check_text(user, lambda message: fields._error(f"allowedUsers[{index}]", message))
        allowed.append(user)
    variants = []
    for index, raw in enumerate(fields.array("variants")):
        variant = _Fields(raw, f"{fields.path}.variants[{index}]")
        variants.append(Variant(variant.string("name", required=True), variant.number("weight")))
    experiment = None
    raw_experiment = fields.optional_object("experiment")
    if raw_experiment is not None:
        experiment = ExperimentAssignment(
            raw_experiment.number("coverage"), raw_experiment.string("salt", required=True)
        )
    return FlagEntry(
        key=fields.string("key", required=True),
        enabled=fields.boolean("enabled"),
        percent=fields.number("percent"),
        allowed_users=tuple(allowed),
        variants=tuple(variants),
        experiment=experiment,
        shipped_variant=fields.string("shippedVariant", nullable=True),
        phase=fields.string("phase", default=""),
        generation=fields.integer("generation", 0),
        updated_at=fields.string("updatedAt", default=""),
    )


def _check(map_key: str, flag: FlagEntry) -> None:
    """The rules across fields, as ``FlagDocument::check`` in the Rust SDK."""

    def invalid(field: str, message: str) -> FlagDocumentError:
        return FlagDocumentError(f"flag document entry flags.{map_key}.{field}: {message}")

    if flag.key != map_key:
        raise FlagDocumentError(f"flag document entry flags.{map_key} has key {flag.key!r}; they must match")
    if not 0.0 <= flag.percent <= 100.0:
        raise invalid("percent", f"{flag.percent} is outside 0..100")
    if flag.variants:
        total = 0.0
        for variant in flag.variants:  # a plain running sum: Python 3.12's sum() compensates
            total += variant.weight
        if abs(total - 100.0) > 1e-6 or any(variant.weight < 0.0 for variant in flag.variants):
            raise invalid("variants", f"weights must be non-negative and sum to 100, got {total}")
    if flag.experiment is not None and not 0.0 <= flag.experiment.coverage <= 100.0:
        raise invalid("experiment.coverage", f"{flag.experiment.coverage} is outside 0..100")
    if flag.shipped_variant is not None and all(v.name != flag.shipped_variant for v in flag.variants):
        raise invalid("shippedVariant", f"{flag.shipped_variant!r} is not one of the flag's variants")


def parse_document(
    data: "bytes | str", read_shard: Optional[Callable[[str], Optional[bytes]]] = None
) -> Dict[str, FlagEntry]:
    """Parses and checks a flag document; returns its flags by key.

    Raises :class:`FlagDocumentError` (never anything else) when the document cannot be
    used. Bytes must be UTF-8; the version is checked before the shape, so a document
    from a newer operator says so instead of failing on a renamed field.

    When ``data`` is the index of a sharded document (``docs/flag-document.md``),
    ``read_shard(key)`` returns the bytes of the shard stored under ``key`` (its file name
    beside the index), or None when it does not exist. A shard is used only when its
    SHA-256 is the one the index names, so shards of two generations are never mixed;
    otherwise :class:`ShardError` is raised.
    """
    if isinstance(data, (bytes, bytearray, memoryview)):
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError as error:
            raise FlagDocumentError(f"malformed flag document: not UTF-8 ({error})") from None
    else:
        text = data
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except FlagDocumentError:
        raise
    except (ValueError, RecursionError) as error:
        raise FlagDocumentError(f"malformed flag document: {error}") from None
    if not isinstance(document, dict):
        raise FlagDocumentError(f"malformed flag document: expected an object, found {_describe(document)}")
    if "schemaVersion" not in document:
        raise FlagDocumentError("malformed flag document at schemaVersion: missing field")
    version = document["schemaVersion"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise FlagDocumentError(
            f"malformed flag document at schemaVersion: expected a positive integer, found {json.dumps(version)}"
        )
    if version != SCHEMA_VERSION:
        raise FlagDocumentError(
            f"unsupported flag document schemaVersion {version}; this SDK reads version {SCHEMA_VERSION}"
        )
    if "shards" in document:
        if read_shard is None:
            raise FlagDocumentError(
                "malformed flag document at shards: this is the index of a sharded document; "
                "read it with a reader that can open its shards"
            )
        return _assemble(document, read_shard)
    if "flags" not in document:
        raise FlagDocumentError("malformed flag document at flags: missing field")
    raw_flags = document["flags"]
    if not isinstance(raw_flags, dict):
        raise FlagDocumentError(f"malformed flag document at flags: expected an object, found {_describe(raw_flags)}")
    flags = {}
    for map_key in sorted(raw_flags):
        _check_text(map_key, lambda message: FlagDocumentError(f"malformed flag document at flags: {message}"))
        flags[map_key] = _entry(map_key, raw_flags[map_key])
    for map_key, flag in flags.items():
        _check(map_key, flag)
    return flags


def _assemble(index: Dict[str, Any], read_shard: Callable[[str], Optional[bytes]]) -> Dict[str, FlagEntry]:
    """The flags of every shard an index names, as ``ShardIndex::assemble`` in the Rust SDK."""
    fields = _Fields(index, "index")
    generation = fields.integer("generation", 0)
    flags: Dict[str, FlagEntry] = {}
    for position, raw in enumerate(fields.array("shards")):
        shard = _Fields(raw, f"shards[{position}]")
        config_map = shard.string("configMap", required=True)
        key = shard.string("key", required=True)
        digest = shard.string("sha256", required=True)
        data = read_shard(key) if _is_plain_file_name(key) else None
        if data is None:
            raise ShardError(
                f"shard {config_map} (key {key}) named by the index is missing; keeping the last good flags"
            )
        if hashlib.sha256(data).hexdigest() != digest:
            raise ShardError(
                f"shard {config_map} (key {key}) does not match index generation {generation} "
                "(a publish is under way, or the shard was edited); keeping the last good flags"
            )
        try:
            part = parse_document(data)
        except FlagDocumentError as error:
            raise FlagDocumentError(f"shard {config_map} (key {key}): {error}") from None
        for flag_key, entry in part.items():
            if flag_key in flags:
                raise FlagDocumentError(f"flag {flag_key} is in two shards, the second in {config_map}")
            flags[flag_key] = entry
    return dict(sorted(flags.items()))


def _is_plain_file_name(key: str) -> bool:
    return bool(key) and not key.startswith(".") and "/" not in key and "\\" not in key
