"""``@flag_required("key")``: a view that exists only while its flag is on."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import rollgate
from django.http import Http404


def flag_required(key: str) -> Callable[[Callable], Callable]:
    """Raise ``Http404`` unless ``key`` is on for ``request.user``.

    Works on function views, sync or async; for a class-based view use
    ``method_decorator(flag_required("key"), name="dispatch")``. A request without a
    ``user`` attribute (no authentication middleware) is evaluated with no user.
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
                if not rollgate.flag_enabled(key, user):
                    raise Http404(f"feature flag {key!r} is off")
                return await view(request, *args, **kwargs)

            return async_view

        @functools.wraps(view)
        def sync_view(request: Any, *args: Any, **kwargs: Any) -> Any:
            if not rollgate.flag_enabled(key, getattr(request, "user", None)):
                raise Http404(f"feature flag {key!r} is off")
            return view(request, *args, **kwargs)

        return sync_view

    return decorator
