"""``@flag_required("key")``: a view that exists only while its flag is on."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import rollgate
from asgiref.sync import sync_to_async
from django.http import Http404

from .context import context_builder, user_context


def flag_required(key: str) -> Callable[[Callable], Callable]:
    """Raise ``Http404`` unless ``key`` is on for ``request.user``.

    Works on function views, sync or async; for a class-based view use
    ``method_decorator(flag_required("key"), name="dispatch")``. A request without a
    ``user`` attribute (no authentication middleware) is evaluated with no user. The
    ``ROLLGATE_CONTEXT`` setting builds the user's context for targeting rules.
    """

    def decorator(view: Callable) -> Callable:
        if inspect.iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_view(request: Any, *args: Any, **kwargs: Any) -> Any:
                # request.user would query the database synchronously; auser() is async.
                if hasattr(request, "auser"):
                    user = await request.auser()
                else:
                    user = getattr(request, "user", None)
                # The builder may query the database, which is synchronous.
                context = await sync_to_async(user_context)(user, request) if context_builder() else None
                if not rollgate.flag_enabled(key, user, context=context):
                    raise Http404(f"feature flag {key!r} is off")
                return await view(request, *args, **kwargs)

            return async_view

        @functools.wraps(view)
        def sync_view(request: Any, *args: Any, **kwargs: Any) -> Any:
            user = getattr(request, "user", None)
            if not rollgate.flag_enabled(key, user, context=user_context(user, request)):
                raise Http404(f"feature flag {key!r} is off")
            return view(request, *args, **kwargs)

        return sync_view

    return decorator
