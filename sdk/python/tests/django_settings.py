"""Minimal Django settings for the rollgate.django tests (no database is touched).

ROLLGATE_FLAGS_PATH is deliberately absent: tests set it with override_settings.
"""

from django.http import HttpResponse
from django.urls import path

SECRET_KEY = "rollgate-tests"
DEBUG = False
ALLOWED_HOSTS = ["testserver"]
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "rollgate.django",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
MIDDLEWARE = []
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]
ROOT_URLCONF = __name__
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"


# Builders for ROLLGATE_CONTEXT, which the tests set with override_settings.
CONTEXT_CALLS = []


def user_context(user):
    CONTEXT_CALLS.append(user)
    if user is None or user.is_anonymous:
        return {}
    return {"plan": user.first_name, "staff": user.is_staff}


def list_context(user):
    return ["plan", "pro"]


NOT_CALLABLE = 5


def _views():
    from rollgate.django import flag_required

    @flag_required("beta-page")
    def beta(request):
        return HttpResponse("beta")

    return beta


def _health():
    from rollgate.django.views import health

    return health


urlpatterns = [path("beta/", _views()), path("healthz/rollgate", _health())]
