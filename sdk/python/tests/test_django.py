"""The Django integration: template tag, view decorator, override_flag and the setting."""

import asyncio
import json
import os

import pytest

django = pytest.importorskip("django")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_settings")
django.setup()

from django.contrib.auth.models import AnonymousUser, User  # noqa: E402
from django.http import Http404, HttpResponse  # noqa: E402
from django.template import Context, Template, TemplateSyntaxError, engines  # noqa: E402
from django.test import Client, RequestFactory, override_settings  # noqa: E402

import rollgate  # noqa: E402
from conftest import document, flag_entry  # noqa: E402
from rollgate.django import flag_required  # noqa: E402
from rollgate.django.testing import override_flag  # noqa: E402

AB = [{"name": "control", "weight": 50}, {"name": "treatment", "weight": 50}]


@pytest.fixture
def flags_file(tmp_path):
    """A document with flags for every test, set as the Django setting."""
    path = tmp_path / "flags.json"
    path.write_text(
        document(
            flag_entry("everyone"),
            flag_entry("nobody", percent=0),
            flag_entry("vip-only", percent=0, allowedUsers=["7"]),
            flag_entry("beta-page", percent=0, allowedUsers=["7"]),
            flag_entry("ab", variants=AB),
            flag_entry("killed", enabled=False),
            flag_entry("empty-user-only", percent=0, allowedUsers=[""]),
        ),
        encoding="utf-8",
    )
    with override_settings(ROLLGATE_FLAGS_PATH=str(path)):
        yield path


def render(source, **context):
    return Template("{% load rollgate %}" + source).render(Context(context)).strip()


def request_for(user):
    request = RequestFactory().get("/")
    request.user = user
    return request


def test_setting_chooses_the_file(flags_file, tmp_path, monkeypatch):
    other = tmp_path / "env.json"
    other.write_text(document(flag_entry("nobody")), encoding="utf-8")
    monkeypatch.setenv("ROLLGATE_FLAGS_PATH", str(other))  # the setting wins
    assert rollgate.default_path() == str(flags_file)
    assert rollgate.default_client().path == str(flags_file)
    assert not rollgate.flag_enabled("nobody", "u")


def test_changing_the_setting_resets_the_default_client(flags_file, tmp_path):
    assert rollgate.flag_enabled("everyone", "u")
    second = tmp_path / "second.json"
    second.write_text(document(flag_entry("everyone", percent=0)), encoding="utf-8")
    with override_settings(ROLLGATE_FLAGS_PATH=str(second)):
        assert not rollgate.flag_enabled("everyone", "u")
    assert rollgate.flag_enabled("everyone", "u")


def test_users_are_bucketed_by_primary_key(flags_file):
    assert rollgate.flag_enabled("vip-only", User(pk=7))
    assert not rollgate.flag_enabled("vip-only", User(pk=8))
    assert rollgate.evaluate("vip-only", AnonymousUser()).reason == "no-user"
    assert rollgate.variant("ab", User(pk=3)) == rollgate.variant("ab", 3) == rollgate.variant("ab", "3")


def test_flag_tag(flags_file):
    source = '{% flag "everyone" %}on{% else %}off{% endflag %}'
    assert render(source) == "on"
    assert render('{% flag "nobody" %}on{% else %}off{% endflag %}') == "off"
    assert render('{% flag "missing" %}on{% endflag %}') == ""
    assert render('{% flag "killed" %}on{% else %}off{% endflag %}', request=request_for(User(pk=7))) == "off"


def test_flag_tag_uses_request_user(flags_file):
    source = '{% flag "vip-only" %}vip{% else %}regular{% endflag %}'
    assert render(source, request=request_for(User(pk=7))) == "vip"
    assert render(source, request=request_for(User(pk=8))) == "regular"
    assert render(source, request=request_for(AnonymousUser())) == "regular"
    assert render(source) == "regular"  # no request in the context


def test_flag_tag_with_explicit_user_and_variable_key(flags_file):
    source = "{% flag key user=owner %}yes{% else %}no{% endflag %}"
    assert render(source, key="vip-only", owner=User(pk=7), request=request_for(User(pk=8))) == "yes"
    assert render(source, key="vip-only", owner=7) == "yes"
    # A missing variable is no user (not the empty-string user).
    assert render("{% flag 'empty-user-only' user=nope %}yes{% else %}no{% endflag %}") == "no"
    assert render("{% flag 'empty-user-only' user='' %}yes{% else %}no{% endflag %}") == "yes"


def test_flag_tag_through_the_template_engine_with_the_request_context_processor(flags_file):
    template = engines["django"].from_string('{% load rollgate %}{% flag "vip-only" %}vip{% endflag %}')
    assert template.render({}, request=request_for(User(pk=7))) == "vip"
    assert template.render({}, request=request_for(User(pk=1))) == ""


def test_flag_variant_tag(flags_file):
    expected = rollgate.variant("ab", 3)
    assert expected in ("control", "treatment")
    assert render('{% flag_variant "ab" as arm %}[{{ arm }}]', request=request_for(User(pk=3))) == f"[{expected}]"
    assert render('{% flag_variant "nobody" user=3 as arm %}[{{ arm }}]') == "[None]"


@pytest.mark.parametrize(
    "source",
    [
        "{% flag %}x{% endflag %}",
        '{% flag "a" "b" %}x{% endflag %}',
        '{% flag "a" %}x',
        '{% flag_variant "a" %}',
    ],
)
def test_tag_syntax_errors(source):
    with pytest.raises(TemplateSyntaxError):
        render(source)


def test_flag_required_decorator(flags_file):
    @flag_required("beta-page")
    def view(request, slug):
        return HttpResponse(f"beta {slug}")

    assert view(request_for(User(pk=7)), slug="x").content == b"beta x"
    for user in (User(pk=8), AnonymousUser()):
        with pytest.raises(Http404):
            view(request_for(user), slug="x")
    with pytest.raises(Http404):
        view(RequestFactory().get("/"), slug="x")  # no request.user at all
    assert view.__name__ == "view"


def test_flag_required_gives_a_404_response(flags_file):
    assert Client().get("/beta/").status_code == 404
    with override_flag("beta-page"):
        response = Client().get("/beta/")
        assert response.status_code == 200 and response.content == b"beta"


def test_health_view_fails_until_a_document_is_read(tmp_path):
    path = tmp_path / "flags.json"
    with override_settings(ROLLGATE_FLAGS_PATH=str(path)):
        response = Client().get("/healthz/rollgate")
        assert response.status_code == 503
        body = json.loads(response.content)
        assert body["ok"] is False and str(path) in body["last_error"]
        path.write_text(document(flag_entry("everyone")), encoding="utf-8")
        rollgate.default_client().refresh()
        response = Client().get("/healthz/rollgate")
        assert response.status_code == 200
        assert json.loads(response.content)["flags"] == 1


def async_request_for(user):
    """A request as ASGI gives it: the user comes from ``await request.auser()``."""
    request = RequestFactory().get("/")

    async def auser():
        return user

    request.auser = auser
    return request


def test_flag_required_on_async_views(flags_file):
    @flag_required("beta-page")
    async def view(request):
        return HttpResponse("async beta")

    async def run(user):
        return await view(async_request_for(user))

    assert asyncio.run(run(User(pk=7))).content == b"async beta"
    with pytest.raises(Http404):
        asyncio.run(run(User(pk=8)))


def test_override_flag(flags_file):
    with override_flag("nobody", active=True, variant="treatment"):
        assert rollgate.flag_enabled("nobody", "u")
        assert rollgate.variant("nobody", "u") == "treatment"
        assert render('{% flag "nobody" %}on{% else %}off{% endflag %}') == "on"
        assert render('{% flag_variant "nobody" as arm %}{{ arm }}') == "treatment"
    with override_flag("everyone", active=False):
        assert render('{% flag "everyone" %}on{% else %}off{% endflag %}') == "off"
    assert render('{% flag "everyone" %}on{% else %}off{% endflag %}') == "on"


@override_flag("nobody")
def test_override_flag_as_a_decorator(flags_file):
    assert rollgate.flag_enabled("nobody", "u")


def test_override_flag_needs_no_document(tmp_path):
    with override_settings(ROLLGATE_FLAGS_PATH=str(tmp_path / "absent.json")):
        with override_flag("new"):
            assert rollgate.flag_enabled("new", User(pk=1))
        assert not rollgate.flag_enabled("new", User(pk=1))


def test_the_app_is_installed():
    from django.apps import apps

    assert apps.get_app_config("rollgate").name == "rollgate.django"


def test_settings_module_has_no_flags_path():
    from django.conf import settings

    assert not hasattr(settings, "ROLLGATE_FLAGS_PATH") or json.dumps(settings.ROLLGATE_FLAGS_PATH)


# -- ROLLGATE_CONTEXT ---------------------------------------------------------------------

PRO_RULE = {"attribute": "plan", "operator": "In", "values": ["pro"]}


@pytest.fixture
def targeted_file(tmp_path):
    """"pro-only" is on, with the variant treatment, for users whose plan is pro."""
    path = tmp_path / "flags.json"
    entry = flag_entry(
        "pro-only",
        percent=0,
        variants=AB,
        targeting=[{"name": "pro", "conditions": [PRO_RULE], "serve": {"variant": "treatment"}}],
    )
    path.write_text(document(entry, schema_version=2), encoding="utf-8")
    with override_settings(ROLLGATE_FLAGS_PATH=str(path)):
        yield path


PRO, FREE = User(pk=8, first_name="pro"), User(pk=9, first_name="free")
TAG = '{% flag "pro-only" %}on{% else %}off{% endflag %}'


def test_the_tags_pass_the_context_the_setting_builds(targeted_file):
    from django_settings import CONTEXT_CALLS

    assert render(TAG, request=request_for(PRO)) == "off"  # no setting: no context
    with override_settings(ROLLGATE_CONTEXT="django_settings.user_context"):
        assert render(TAG, request=request_for(PRO)) == "on"
        assert render(TAG, request=request_for(FREE)) == "off"
        assert render(TAG, request=request_for(AnonymousUser())) == "off"
        assert render('{% flag "pro-only" user=owner %}on{% else %}off{% endflag %}', owner=PRO) == "on"
        assert render('{% flag_variant "pro-only" as arm %}{{ arm }}', request=request_for(PRO)) == "treatment"
        assert render('{% flag_variant "pro-only" as arm %}{{ arm }}', request=request_for(FREE)) == "None"
        # Built once per request and user, however many tags ask.
        CONTEXT_CALLS.clear()
        request = request_for(PRO)
        assert render(TAG * 3 + '{% flag "pro-only" user=other %}on{% endflag %}', request=request, other=FREE) == (
            "ononon"
        )
        assert CONTEXT_CALLS == [PRO, FREE]


def test_the_setting_may_be_the_callable_itself(targeted_file):
    with override_settings(ROLLGATE_CONTEXT=lambda user: {"plan": "pro"}):
        assert render(TAG, request=request_for(FREE)) == "on"


def test_flag_required_passes_the_context(targeted_file):
    @flag_required("pro-only")
    def view(request):
        return HttpResponse("pro")

    @flag_required("pro-only")
    async def async_view(request):
        return HttpResponse("async pro")

    async def run(user):
        return await async_view(async_request_for(user))

    with pytest.raises(Http404):
        view(request_for(PRO))
    with override_settings(ROLLGATE_CONTEXT="django_settings.user_context"):
        assert view(request_for(PRO)).content == b"pro"
        with pytest.raises(Http404):
            view(request_for(FREE))
        assert asyncio.run(run(PRO)).content == b"async pro"
        with pytest.raises(Http404):
            asyncio.run(run(FREE))


@pytest.mark.parametrize(
    "setting, message",
    [
        ("django_settings.no_such_builder", "ROLLGATE_CONTEXT 'django_settings.no_such_builder' cannot be imported"),
        ("no_such_module.builder", "ROLLGATE_CONTEXT 'no_such_module.builder' cannot be imported"),
        ("django_settings.NOT_CALLABLE", "ROLLGATE_CONTEXT 'django_settings.NOT_CALLABLE' is a int, not a callable"),
        ("django_settings.list_context", "ROLLGATE_CONTEXT 'django_settings.list_context' returned a list, not a dict"),
        (5, "ROLLGATE_CONTEXT must be a dotted path to a callable that takes a user, or the callable, not a int"),
        (lambda user: None, "ROLLGATE_CONTEXT <lambda> returned a NoneType, not a dict"),
    ],
)
def test_a_bad_context_setting_is_named(targeted_file, setting, message):
    from django.core.exceptions import ImproperlyConfigured

    @flag_required("pro-only")
    def view(request):
        return HttpResponse("pro")

    with override_settings(ROLLGATE_CONTEXT=setting):
        with pytest.raises(ImproperlyConfigured) as error:
            render(TAG, request=request_for(PRO))
        assert message in str(error.value)
        with pytest.raises(ImproperlyConfigured, match="ROLLGATE_CONTEXT"):
            view(request_for(PRO))
