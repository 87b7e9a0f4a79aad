"""``ROLLGATE_CONTEXT``: the evaluation context of a Django user, for targeting rules.

The setting names a callable, by dotted path (or the callable itself), that takes the user a
flag is asked for (a Django user, ``AnonymousUser``, or None) and returns the dict of
attributes targeting rules test (docs/targeting.md)::

    # settings.py
    ROLLGATE_CONTEXT = "shop.flags.user_context"

    # shop/flags.py
    def user_context(user):
        if not user or user.is_anonymous:
            return {}
        return {"plan": user.account.plan, "country": user.profile.country, "staff": user.is_staff}

The ``{% flag %}`` and ``{% flag_variant %}`` tags and ``@flag_required`` pass that context.
Without the setting they pass none, and rules see only the user id (``targetingKey``).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Optional

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

__all__ = ["context_builder", "user_context"]

SETTING = "ROLLGATE_CONTEXT"

# Dotted path → callable: importing again on every flag would cost more than the flag.
_imported: Dict[str, Callable[[Any], Any]] = {}
_imported_lock = threading.Lock()


def context_builder() -> Optional[Callable[[Any], Any]]:
    """The callable ``ROLLGATE_CONTEXT`` names, or None when the setting is not set."""
    value = getattr(settings, SETTING, None)
    if value is None:
        return None
    if isinstance(value, str):
        builder = _imported.get(value)
        if builder is None:
            try:
                builder = import_string(value)
            except ImportError as error:
                raise ImproperlyConfigured(f"{SETTING} {value!r} cannot be imported: {error}") from error
            if not callable(builder):
                raise ImproperlyConfigured(
                    f"{SETTING} {value!r} is a {type(builder).__name__}, not a callable that takes a user"
                )
            with _imported_lock:
                _imported[value] = builder
        return builder
    if not callable(value):
        raise ImproperlyConfigured(
            f"{SETTING} must be a dotted path to a callable that takes a user, or the callable,"
            f" not a {type(value).__name__}"
        )
    return value


def user_context(user: Any, request: Any = None) -> Optional[Dict[str, Any]]:
    """The context ``ROLLGATE_CONTEXT`` builds for ``user``, or None without the setting.
    With the ``request``, a page of many ``{% flag %}`` tags builds it once per user."""
    builder = context_builder()
    if builder is None:
        return None
    cached = getattr(request, _CACHE, None)
    if cached is not None and cached[0] is user:
        return cached[1]
    context = builder(user)
    if not isinstance(context, dict):
        raise ImproperlyConfigured(
            f"{SETTING} {_name(builder)} returned a {type(context).__name__}, not a dict of attributes"
        )
    if request is not None:
        setattr(request, _CACHE, (user, context))
    return context


_CACHE = "_rollgate_context"


def _name(builder: Callable[[Any], Any]) -> str:
    setting = getattr(settings, SETTING, None)
    if isinstance(setting, str):
        return repr(setting)
    return getattr(builder, "__qualname__", repr(builder))
