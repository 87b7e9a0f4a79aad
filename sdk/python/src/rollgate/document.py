"""The flag document the operator publishes (``flags.json``), parsed and checked.

``{"schemaVersion": 2, "flags": {"<key>": {"key", "enabled", "percent", ...}},
"segments": {"<name>": {...}}}``; version 1 is the same without targeting rules and
segments, and both are read. Acceptance follows the Rust SDK (``sdk/rust/src/document.rs``):
the schema version is checked first, then the shape of every entry, then the rules that
cross fields. Unknown fields are ignored so that an older SDK reads a newer operator's
document.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple, Union

#: The version the operator writes: 2 added targeting rules and segments.
SCHEMA_VERSION = 2
#: Every version this SDK reads.
READABLE_SCHEMA_VERSIONS = (1, 2)
_I64 = (-(2**63), 2**63 - 1)

#: The operators of a condition (docs/targeting.md).
OPERATORS = (
    "In",
    "NotIn",
    "StartsWith",
    "EndsWith",
    "Contains",
    "Lt",
    "Lte",
    "Gt",
    "Gte",
    "SemverLt",
    "SemverGte",
    "SemverEq",
    "Exists",
    "InSegment",
)
_STRING_OPERATORS = ("In", "NotIn", "StartsWith", "EndsWith", "Contains")
_NUMBER_OPERATORS = ("Lt", "Lte", "Gt", "Gte")
_VERSION_OPERATORS = ("SemverLt", "SemverGte", "SemverEq")
_SERVES = ("enabled", "variant", "percent")

# [0-9], not \d: \d also matches other scripts' digits. Used with fullmatch (a "$" would
# accept a trailing newline).
NUMBER_PATTERN = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_IDENTIFIERS = r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*"
_NUMERIC = r"0|[1-9][0-9]*"
VERSION_PATTERN = re.compile(
    rf"({_NUMERIC})(?:\.({_NUMERIC})(?:\.({_NUMERIC}))?)?(?:-({_IDENTIFIERS}))?(?:\+{_IDENTIFIERS})?"
)


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


class Condition(NamedTuple):
    """``{attribute, operator, values}``; ``attribute`` is None for ``InSegment``."""

    attribute: Optional[str]
    operator: str
    values: Tuple[str, ...] = ()


class Serve(NamedTuple):
    """What a matching rule serves: ``kind`` is ``"enabled"`` (``value`` a bool),
    ``"variant"`` (a variant name) or ``"percent"`` (0–100)."""

    kind: str
    value: Union[bool, str, float]


class TargetingRule(NamedTuple):
    name: str
    conditions: Tuple[Condition, ...]
    serve: Serve


class SegmentRule(NamedTuple):
    conditions: Tuple[Condition, ...]


class Segment(NamedTuple):
    """An audience: a user is in when not ``excluded`` and either ``included`` or matched
    by one of ``rules``."""

    included: Tuple[str, ...] = ()
    excluded: Tuple[str, ...] = ()
    rules: Tuple[SegmentRule, ...] = ()


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
    #: Ordered rules on the evaluation context (schemaVersion 2); the first match decides.
    targeting: Tuple[TargetingRule, ...] = ()


class FlagDocument(NamedTuple):
    """A whole parsed document: its flags by key and the segments their rules name."""

    schema_version: int
    flags: Dict[str, FlagEntry]
    segments: Dict[str, Segment]

    @classmethod
    def from_json(
        cls, data: "bytes | str", read_shard: Optional[Callable[[str], Optional[bytes]]] = None
    ) -> "FlagDocument":
        """Parses and checks a document, as :func:`parse_document`, keeping its segments."""
        return _parse(data, read_shard)


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

    def array(self, name: str, required: bool = False) -> List[Any]:
        value = self._get(name, required)
        if value is _ABSENT:
            return []
        if not isinstance(value, list):
            raise self._error(name, f"expected an array, found {_describe(value)}")
        return value

    def strings(self, name: str, required: bool = False) -> Tuple[str, ...]:
        items = []
        for index, item in enumerate(self.array(name, required)):
            where = f"{name}[{index}]"
            if not isinstance(item, str):
                raise self._error(where, f"expected a string, found {_describe(item)}")
            _check_text(item, lambda message: self._error(where, message))
            items.append(item)
        return tuple(items)

    def objects(self, name: str, required: bool = False) -> List["_Fields"]:
        return [_Fields(item, f"{self.path}.{name}[{i}]") for i, item in enumerate(self.array(name, required))]

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


def _invalid(path: str, message: str) -> FlagDocumentError:
    # "flag document entry flags.<key>.<field>" as for the other fields of a flag.
    where = f"entry {path}" if path.startswith("flags.") else path
    return FlagDocumentError(f"flag document {where}: {message}")


def _conditions(fields: _Fields, allow_segments: bool) -> Tuple[Condition, ...]:
    """The ``conditions`` of a rule, each checked against its operator's contract."""
    conditions = []
    for condition in fields.objects("conditions", required=True):
        operator = condition.string("operator", required=True)
        if operator not in OPERATORS:
            raise _invalid(f"{condition.path}.operator", f"unknown operator {operator!r}")
        attribute = condition.string("attribute", nullable=True)
        values = condition.strings("values")
        where = f"{condition.path}.values"
        if operator == "InSegment":
            if not allow_segments:
                raise _invalid(f"{condition.path}.operator", "InSegment is not allowed inside a segment")
            if attribute is not None:
                raise _invalid(f"{condition.path}.attribute", "InSegment takes no attribute")
            if not 1 <= len(values) <= 10:
                raise _invalid(where, f"InSegment names 1 to 10 segments, found {len(values)}")
        elif not attribute:
            raise _invalid(f"{condition.path}.attribute", f"{operator} needs an attribute")
        elif operator == "Exists":
            if values:
                raise _invalid(where, f"Exists takes no values, found {len(values)}")
        elif operator in _STRING_OPERATORS:
            if not 1 <= len(values) <= 100:
                raise _invalid(where, f"{operator} takes 1 to 100 values, found {len(values)}")
            if operator not in ("In", "NotIn") and "" in values:
                raise _invalid(where, f"{operator} values must not be empty")
        elif len(values) != 1:
            raise _invalid(where, f"{operator} takes exactly one value, found {len(values)}")
        elif operator in _NUMBER_OPERATORS and not NUMBER_PATTERN.fullmatch(values[0]):
            raise _invalid(where, f"{values[0]!r} is not a decimal number")
        elif operator in _VERSION_OPERATORS and parse_version(values[0]) is None:
            raise _invalid(where, f"{values[0]!r} is not a version (MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD])")
        conditions.append(Condition(attribute, operator, values))
    if not conditions:
        raise _invalid(f"{fields.path}.conditions", "a rule needs at least one condition")
    return tuple(conditions)


def _serve(fields: _Fields) -> Serve:
    given = [name for name in fields.obj if name in _SERVES]
    if len(given) != 1 or len(fields.obj) != 1:
        raise _invalid(fields.path, "serve has exactly one of enabled, variant and percent")
    kind = given[0]
    if kind == "enabled":
        return Serve(kind, fields.boolean(kind))
    if kind == "variant":
        return Serve(kind, fields.string(kind, required=True))
    percent = fields.number(kind)
    if not 0.0 <= percent <= 100.0:
        raise _invalid(f"{fields.path}.percent", f"{percent} is outside 0..100")
    return Serve(kind, percent)


def _targeting(fields: _Fields, variants: Tuple[Variant, ...]) -> Tuple[TargetingRule, ...]:
    rules = []
    names = set()
    for rule in fields.objects("targeting"):
        name = rule.string("name", required=True)
        if not name:
            raise _invalid(f"{rule.path}.name", "a rule needs a name")
        if name in names:
            raise _invalid(f"{rule.path}.name", f"duplicate rule name {name!r}")
        names.add(name)
        conditions = _conditions(rule, allow_segments=True)
        raw_serve = rule._get("serve", True)
        serve = _serve(_Fields(raw_serve, f"{rule.path}.serve"))
        if serve.kind == "variant" and all(v.name != serve.value for v in variants):
            raise _invalid(f"{rule.path}.serve.variant", f"{serve.value!r} is not one of the flag's variants")
        rules.append(TargetingRule(name, conditions, serve))
    return tuple(rules)


def _segment(name: str, obj: Any) -> Segment:
    fields = _Fields(obj, f"segments.{name}")
    rules = tuple(SegmentRule(_conditions(rule, allow_segments=False)) for rule in fields.objects("rules"))
    return Segment(fields.strings("included"), fields.strings("excluded"), rules)


def parse_version(text: str) -> Optional[Tuple[Any, ...]]:
    """A version's precedence key (docs/targeting.md, "Versions"), or None if ``text`` is not
    one. Keys compare as SemVer 2.0.0 §11 says: a release sorts above its pre-releases,
    numeric identifiers below alphanumeric ones; build metadata is dropped."""
    match = VERSION_PATTERN.fullmatch(text)
    if match is None:
        return None
    major, minor, patch, prerelease = match.groups()
    if prerelease is None:
        return (int(major), int(minor or 0), int(patch or 0), 1, ())
    identifiers = []
    for identifier in prerelease.split("."):
        if identifier.isdigit():  # the pattern already made it ASCII
            if len(identifier) > 1 and identifier[0] == "0":
                return None
            identifiers.append((0, int(identifier), ""))
        else:
            identifiers.append((1, 0, identifier))
    return (int(major), int(minor or 0), int(patch or 0), 0, tuple(identifiers))


def _entry(map_key: str, obj: Any) -> FlagEntry:
    fields = _Fields(obj, f"flags.{map_key}")
    allowed = fields.strings("allowedUsers")
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
    targeting = _targeting(fields, tuple(variants))
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
        targeting=targeting,
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

    :meth:`FlagDocument.from_json` does the same and keeps the segments too.

    Raises :class:`FlagDocumentError` (never anything else) when the document cannot be
    used. Bytes must be UTF-8; the version is checked before the shape, so a document
    from a newer operator says so instead of failing on a renamed field.

    When ``data`` is the index of a sharded document (``docs/flag-document.md``),
    ``read_shard(key)`` returns the bytes of the shard stored under ``key`` (its file name
    beside the index), or None when it does not exist. A shard is used only when its
    SHA-256 is the one the index names, so shards of two generations are never mixed;
    otherwise :class:`ShardError` is raised.
    """
    return _parse(data, read_shard).flags


def _parse(data: "bytes | str", read_shard: Optional[Callable[[str], Optional[bytes]]]) -> FlagDocument:
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
    if version not in READABLE_SCHEMA_VERSIONS:
        raise FlagDocumentError(
            f"unsupported flag document schemaVersion {version}; this SDK reads versions 1 and {SCHEMA_VERSION}"
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
    raw_segments = document.get("segments", {})
    if not isinstance(raw_segments, dict):
        raise FlagDocumentError(
            f"malformed flag document at segments: expected an object, found {_describe(raw_segments)}"
        )
    segments = {}
    for name in sorted(raw_segments):
        _check_text(name, lambda message: FlagDocumentError(f"malformed flag document at segments: {message}"))
        segments[name] = _segment(name, raw_segments[name])
    return FlagDocument(version, flags, segments)


def _assemble(index: Dict[str, Any], read_shard: Callable[[str], Optional[bytes]]) -> FlagDocument:
    """The flags of every shard an index names, as ``ShardIndex::assemble`` in the Rust SDK.
    Each shard carries the segments its own flags use; shards of one generation agree on
    them, as they are cut from one resolved namespace."""
    fields = _Fields(index, "index")
    generation = fields.integer("generation", 0)
    flags: Dict[str, FlagEntry] = {}
    segments: Dict[str, Segment] = {}
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
            part = _parse(data, None)
        except FlagDocumentError as error:
            raise FlagDocumentError(f"shard {config_map} (key {key}): {error}") from None
        for flag_key, entry in part.flags.items():
            if flag_key in flags:
                raise FlagDocumentError(f"flag {flag_key} is in two shards, the second in {config_map}")
            flags[flag_key] = entry
        segments.update(part.segments)
    return FlagDocument(SCHEMA_VERSION, dict(sorted(flags.items())), dict(sorted(segments.items())))


def _is_plain_file_name(key: str) -> bool:
    return bool(key) and not key.startswith(".") and "/" not in key and "\\" not in key
