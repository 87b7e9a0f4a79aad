"""``Flags``: reads the mounted flag document and answers flag questions from memory."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple

from ._overrides import OVERRIDES
from ._rules import MISSING, CompiledFlag, Evaluation, compile_flag, compile_segments
from ._scope import current_scope
from .document import FlagDocument, FlagDocumentError, FlagEntry, Segment, ShardError

#: An evaluation context: attribute name → str, int or float, bool, or a list or tuple of
#: str (docs/targeting.md). An attribute set to None is absent.
Context = Mapping[str, Any]

logger = logging.getLogger("rollgate")

DEFAULT_PATH = "/etc/rollgate/flags.json"
_NEVER = float("-inf")


def user_id(user: Any) -> Optional[str]:
    """The id a user is bucketed by.

    ``None`` and anonymous Django users have no id. A Django user (anything with ``pk``)
    is ``str(user.pk)``, an ``int`` is ``str(int)``, a ``str`` is itself. Anything else,
    including ``bool``, is a mistake and raises ``TypeError``.
    """
    if user is None:
        return None
    kind = type(user)
    if kind is str:
        return user
    if kind is int:
        return str(user)
    if isinstance(user, bool):
        raise TypeError("rollgate: a bool is not a user id")
    if isinstance(user, str):
        return str.__str__(user)
    if isinstance(user, int):
        return str(int(user))
    if getattr(user, "is_anonymous", False) is True:
        return None
    pk = getattr(user, "pk", _NO_PK)
    if pk is not _NO_PK:
        return None if pk is None else str(pk)
    raise TypeError(f"rollgate: cannot use a {kind.__name__} as a user; pass a str, an int or a Django user")


_NO_PK = object()


def check_context(context: Any) -> Optional[Context]:
    """``context`` if it is None or a mapping of attributes; raises ``TypeError`` otherwise."""
    if context is None or type(context) is dict or isinstance(context, Mapping):
        return context
    raise TypeError(f"rollgate: a context is a dict of attributes, not a {type(context).__name__}")


class FlagSet:
    """Every flag of one parsed document, compiled and indexed by key."""

    __slots__ = ("entries", "segments", "_compiled")

    def __init__(
        self, entries: Optional[Dict[str, FlagEntry]] = None, segments: Optional[Dict[str, Segment]] = None
    ) -> None:
        self.entries: Dict[str, FlagEntry] = dict(entries or {})
        self.segments: Dict[str, Segment] = dict(segments or {})
        compiled_segments = compile_segments(self.segments)
        self._compiled: Dict[str, CompiledFlag] = {
            key: compile_flag(entry, compiled_segments) for key, entry in self.entries.items()
        }

    @classmethod
    def from_json(
        cls, data: "bytes | str", read_shard: Optional[Callable[[str], Optional[bytes]]] = None
    ) -> "FlagSet":
        """Parses a document, or the index of a sharded one whose shards ``read_shard(key)``
        returns; raises :class:`rollgate.FlagDocumentError` if unusable."""
        document = FlagDocument.from_json(data, read_shard)
        return cls(document.flags, document.segments)

    def evaluate(self, key: str, user: Optional[str], context: Optional[Context] = None) -> Evaluation:
        """The answer for the user id ``user`` (a str, or None) in ``context``."""
        flag = self._compiled.get(key)
        return MISSING if flag is None else flag.evaluate(user, check_context(context))

    def get(self, key: str) -> Optional[CompiledFlag]:
        return self._compiled.get(key)

    def __len__(self) -> int:
        return len(self._compiled)

    def __iter__(self) -> Iterator[str]:
        return iter(self._compiled)


_EMPTY = FlagSet()


def _signature(stat: os.stat_result) -> Tuple[int, int, int, int]:
    return (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)


class Flags:
    """A client for one flag document file, usually a mounted ConfigMap.

    The document is parsed once and cached. At most once per ``check_interval`` seconds
    (by ``clock``, which tests replace) a call stats the path, following symlinks as a
    ConfigMap's ``..data`` swap needs, and re-reads the file when its inode, size or
    mtime changed. A document that cannot be used is logged, counted in
    ``reload_errors`` and otherwise ignored: the last good flags stay in force, and
    before any good load every flag is off with reason ``missing``. No method raises
    because of the file.

    Inside a request scope (:meth:`rollgate.metrics.CohortMetrics.request`) every answer
    is also recorded in the scope, for the cohort-labelled request metrics.
    """

    def __init__(
        self,
        path: "str | os.PathLike[str]" = DEFAULT_PATH,
        *,
        check_interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = os.fspath(path)
        self.check_interval = check_interval
        self.reload_errors = 0
        self.last_error: Optional[str] = None
        self._clock = clock
        self._lock = threading.Lock()
        self._flags = _EMPTY
        self._compiled: Dict[str, CompiledFlag] = {}
        self._loaded = False
        self._signature: Optional[Tuple[Any, ...]] = None
        # The index names shards that do not match yet: read again at the next check even
        # if the index itself has not changed.
        self._shards_pending = False
        self._next_check = _NEVER
        self._check()

    # -- answers ---------------------------------------------------------------------

    def flag_enabled(self, key: str, user: Any = None, context: Optional[Context] = None) -> bool:
        """Is ``key`` on for ``user`` (a str, an int, a Django user, or None)? ``context`` is
        the dict of attributes that targeting rules test; the user's id is ``targetingKey``."""
        if current_scope() is not None:
            # The scope's cohort is the variant when there is one, so take the full answer.
            return self.evaluate(key, user, context).enabled
        if OVERRIDES:
            forced = OVERRIDES.get(key)
            if forced is not None:
                return forced.enabled
        if self._clock() >= self._next_check:
            self._check()
        flag = self._compiled.get(key)
        if flag is None:
            return False
        uid = user if type(user) is str else user_id(user)
        # Without a context, the call of the plain path is unchanged.
        if context is None:
            return flag.is_enabled(uid)
        return flag.is_enabled(uid, check_context(context))

    def variant(self, key: str, user: Any = None, context: Optional[Context] = None) -> Optional[str]:
        """The user's variant of ``key``, or None (off, no variants, or outside the experiment)."""
        return self.evaluate(key, user, context).variant

    def evaluate(self, key: str, user: Any = None, context: Optional[Context] = None) -> Evaluation:
        """The full answer: ``enabled``, ``variant``, ``reason``, ``rank`` and ``rule``."""
        answer = OVERRIDES.get(key) if OVERRIDES else None
        if answer is None:
            if self._clock() >= self._next_check:
                self._check()
            flag = self._compiled.get(key)
            if flag is None:
                answer = MISSING
            elif context is None:
                answer = flag.evaluate(user if type(user) is str else user_id(user))
            else:
                answer = flag.evaluate(user if type(user) is str else user_id(user), check_context(context))
        scope = current_scope()
        # A key missing from the document is not recorded, as in the Rust SDK: keys that
        # callers make up must not add series.
        if scope is not None and answer is not MISSING:
            scope.record(key, answer)
        return answer

    def flags_enabled(self, keys: Iterable[str], user: Any = None, context: Optional[Context] = None) -> List[bool]:
        """``flag_enabled`` of each of ``keys``, in order, all from one document.

        ``checkout, search = flags.flags_enabled(["new-checkout", "new-search"], user)``
        """
        return [answer.enabled for answer in self.evaluate_many(keys, user, context)]

    def evaluate_many(
        self, keys: Iterable[str], user: Any = None, context: Optional[Context] = None
    ) -> List[Evaluation]:
        """``evaluate`` of each of ``keys``, in order. The file is checked once, before any
        answer, so a reload can never give one call answers from two documents."""
        if self._clock() >= self._next_check:
            self._check()
        compiled = self._compiled
        uid = user if type(user) is str else user_id(user)
        if context is not None:
            check_context(context)
        scope = current_scope()
        answers = []
        for key in keys:
            answer = OVERRIDES.get(key) if OVERRIDES else None
            if answer is None:
                flag = compiled.get(key)
                if flag is None:
                    answer = MISSING
                elif context is None:
                    answer = flag.evaluate(uid)
                else:
                    answer = flag.evaluate(uid, context)
            if scope is not None and answer is not MISSING:
                scope.record(key, answer)
            answers.append(answer)
        return answers

    # -- state -----------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """Whether a good document has been read."""
        return self._loaded

    def health(self) -> Dict[str, Any]:
        """What a readiness or health check needs: ``ok`` is False until a good document has
        been read (every flag is off meanwhile), with the path and the latest error."""
        return {
            "ok": self._loaded,
            "path": self.path,
            "flags": len(self._flags),
            "reload_errors": self.reload_errors,
            "last_error": self.last_error,
        }

    @property
    def flags(self) -> FlagSet:
        """The flags in force (empty before the first good load)."""
        return self._flags

    def refresh(self) -> None:
        """Checks the file now, whatever the interval."""
        with self._lock:
            self._next_check = self._clock() + self.check_interval
            self._reload_if_changed()

    def _check(self) -> None:
        # One thread checks; the others go on with the flags they have.
        if not self._lock.acquire(blocking=False):
            return
        try:
            now = self._clock()
            if now < self._next_check:
                return
            self._next_check = now + self.check_interval
            self._reload_if_changed()
        finally:
            self._lock.release()

    def _reload_if_changed(self) -> None:
        try:
            signature: Tuple[Any, ...] = _signature(os.stat(self.path))
        except OSError as error:
            self._failed(("stat", error.errno), f"cannot read flag document {self.path}: {error.strerror or error}")
            return
        if signature == self._signature and not self._shards_pending:
            return
        try:
            with open(self.path, "rb") as file:
                # The signature of what is actually read, in case the file moved since.
                signature = _signature(os.fstat(file.fileno()))
                data = file.read()
        except OSError as error:
            self._failed(("open", error.errno), f"cannot read flag document {self.path}: {error.strerror or error}")
            return
        try:
            flags = FlagSet.from_json(data, self._read_shard)
        except ShardError as error:
            self._failed(signature, f"flag document {self.path}: {error}")
            self._shards_pending = True
            return
        except FlagDocumentError as error:
            self._failed(signature, f"flag document {self.path} is unusable: {error}")
            self._shards_pending = False
            return
        self._shards_pending = False
        self._signature = signature
        self._flags = flags
        self._compiled = flags._compiled  # one reference swap: readers see old or new
        self._loaded = True
        self.last_error = None
        logger.info("rollgate: loaded %d flags from %s", len(flags), self.path)

    def _read_shard(self, key: str) -> Optional[bytes]:
        """A shard of a sharded document: the file named by its key beside the index, as a
        projected volume of the index and shard ConfigMaps lays them out."""
        try:
            with open(os.path.join(os.path.dirname(self.path), key), "rb") as file:
                return file.read()
        except OSError:
            return None

    def _failed(self, signature: Tuple[Any, ...], message: str) -> None:
        """Logs and counts a failure once per distinct bad file; keeps the flags in force."""
        if signature == self._signature:
            return
        self._signature = signature
        self.reload_errors += 1
        self.last_error = message
        if self._loaded:
            logger.error("rollgate: %s; keeping the %d flags loaded before", message, len(self._flags))
        else:
            logger.error("rollgate: %s; every flag is off until a good document is read", message)

    def __repr__(self) -> str:
        return f"Flags({self.path!r}, loaded={self._loaded}, flags={len(self._flags)})"
