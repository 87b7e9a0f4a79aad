"""Views for the CohortMetricsMiddleware tests (test_django_metrics.py): each evaluates
flags for the user named by ``?user=`` and answers with the status its name says."""

import rollgate
from django.http import HttpResponse
from django.template import engines
from django.urls import path
from rollgate.django import flag_required


def _user(request):
    return request.GET.get("user")


def ok(request):
    return HttpResponse("on" if rollgate.flag_enabled("checkout", _user(request)) else "off")


def variant(request):
    return HttpResponse(str(rollgate.variant("ab", _user(request))))


def server_error(request):
    rollgate.flag_enabled("checkout", _user(request))
    return HttpResponse("broken", status=500)


def raises(request):
    rollgate.flag_enabled("checkout", _user(request))
    raise RuntimeError("the new checkout crashed")


def not_found(request):
    rollgate.flag_enabled("checkout", _user(request))
    return HttpResponse("no such order", status=404)


def template(request):
    source = '{% load rollgate %}{% flag "checkout" user=user %}new{% else %}old{% endflag %}'
    return HttpResponse(engines["django"].from_string(source).render({"user": _user(request)}))


@flag_required("checkout")
def decorated(request):
    return HttpResponse("new checkout")


def no_flags(request):
    return HttpResponse("nothing evaluated")


async def async_ok(request):
    return HttpResponse("on" if rollgate.flag_enabled("checkout", _user(request)) else "off")


async def async_server_error(request):
    rollgate.flag_enabled("checkout", _user(request))
    return HttpResponse("broken", status=503)


urlpatterns = [
    path("ok/", ok),
    path("variant/", variant),
    path("server-error/", server_error),
    path("raises/", raises),
    path("not-found/", not_found),
    path("template/", template),
    path("decorated/", decorated),
    path("no-flags/", no_flags),
    path("async-ok/", async_ok),
    path("async-server-error/", async_server_error),
]
