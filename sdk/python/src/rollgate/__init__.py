"""Rollgate feature flags for Python.

The Rollgate operator publishes every flag in a ConfigMap (key ``flags.json``) that
workloads mount as a file. This package reads it and answers with the same rules as the
Rust SDK (``docs/evaluation.md``)::

    import rollgate

    if rollgate.flag_enabled("new-checkout", request.user):
        ...
    arm = rollgate.variant("checkout-button", user_id)
    # Targeting rules (docs/targeting.md) test the attributes of a context:
    rollgate.flag_enabled("new-checkout", user_id, context={"country": "DE", "appVersion": "4.2.1"})

    flags = rollgate.Flags("/etc/rollgate/flags.json")   # an explicit client
    flags.evaluate("new-checkout", 42)  # Evaluation(enabled, variant, reason, rank, rule)
    checkout, search = flags.flags_enabled(["new-checkout", "new-search"], user_id)

Request metrics labelled by the flags' cohorts, for guarded rollouts, are in
:mod:`rollgate.metrics` (``pip install "rollgate[metrics]"``).

The module-level helpers use a default client created on first use. Its path is the
Django setting ``ROLLGATE_FLAGS_PATH`` when Django is installed and configured, else the
environment variable ``ROLLGATE_FLAGS_PATH``, else ``/etc/rollgate/flags.json``.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Iterable, List, Optional

from ._overrides import override_flag
from ._rules import (
    RANK_SCALE,
    CompiledFlag,
    Evaluation,
    legacy_bucket,
    percent_threshold,
    rollout_rank,
    variant_rank,
)
from .client import DEFAULT_PATH, Context, Flags, FlagSet, logger, user_id
from .document import (
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    FlagDocument,
    FlagDocumentError,
    FlagEntry,
    ShardError,
    parse_document,
)

__all__ = [
    "DEFAULT_PATH",
    "RANK_SCALE",
    "READABLE_SCHEMA_VERSIONS",
    "SCHEMA_VERSION",
    "CompiledFlag",
    "Context",
    "Evaluation",
    "FlagDocument",
    "FlagDocumentError",
    "FlagEntry",
    "FlagSet",
    "Flags",
    "ShardError",
    "default_client",
    "default_path",
    "evaluate",
    "evaluate_many",
    "flag_enabled",
    "flags_enabled",
    "legacy_bucket",
    "override_flag",
    "parse_document",
    "percent_threshold",
    "reset_default_client",
    "rollout_rank",
    "user_id",
    "variant",
    "variant_rank",
]

__version__ = "0.1.0"

_default: Optional[Flags] = None
_default_lock = threading.Lock()


def default_path() -> str:
    """Django's ``ROLLGATE_FLAGS_PATH`` setting, else the environment's, else the default."""
    path = _django_setting()
    if path:
        return path
    return os.environ.get("ROLLGATE_FLAGS_PATH") or DEFAULT_PATH


def _django_setting() -> Optional[str]:
    try:
        from django.conf import settings
    except ImportError:
        return None
    # Settings are loaded lazily: DJANGO_SETTINGS_MODULE alone means "configured" too.
    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        return None
    try:
        path = getattr(settings, "ROLLGATE_FLAGS_PATH", None)
    except Exception as error:  # ImproperlyConfigured, or a settings module that fails
        logger.warning("rollgate: cannot read Django settings (%s); using the environment", error)
        return None
    return os.fspath(path) if path else None


def default_client() -> Flags:
    """The client behind the module-level helpers, created on first use."""
    global _default
    client = _default
    if client is None:
        with _default_lock:
            if _default is None:
                _default = Flags(default_path())
            client = _default
    return client


def reset_default_client() -> None:
    """Forgets the default client; the next call creates one from the current settings."""
    global _default
    with _default_lock:
        _default = None


def flag_enabled(key: str, user: Any = None, context: Optional[Context] = None) -> bool:
    """Is ``key`` on for ``user`` (a str, an int, a Django user, or None), in ``context``
    (the attributes targeting rules test)?"""
    client = _default
    if client is None:
        client = default_client()
    return client.flag_enabled(key, user, context)


def variant(key: str, user: Any = None, context: Optional[Context] = None) -> Optional[str]:
    """The user's variant of ``key``, or None."""
    client = _default
    if client is None:
        client = default_client()
    return client.variant(key, user, context)


def evaluate(key: str, user: Any = None, context: Optional[Context] = None) -> Evaluation:
    """The full answer for ``key``: enabled, variant, reason, rank and rule."""
    client = _default
    if client is None:
        client = default_client()
    return client.evaluate(key, user, context)


def flags_enabled(keys: Iterable[str], user: Any = None, context: Optional[Context] = None) -> List[bool]:
    """``flag_enabled`` of each of ``keys``, in order, all from one document."""
    client = _default
    if client is None:
        client = default_client()
    return client.flags_enabled(keys, user, context)


def evaluate_many(keys: Iterable[str], user: Any = None, context: Optional[Context] = None) -> List[Evaluation]:
    """``evaluate`` of each of ``keys``, in order, all from one document."""
    client = _default
    if client is None:
        client = default_client()
    return client.evaluate_many(keys, user, context)
