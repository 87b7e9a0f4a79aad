"""The Flags client: caching, reloads, failure handling, users, defaults and overrides."""

import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import rollgate
from conftest import document, flag_entry

ON = document(flag_entry("feature", percent=100))
OFF = document(flag_entry("feature", percent=0))
assert len(ON) == len(OFF) + 2


def write(path, text, mtime_ns=None):
    Path(path).write_text(text, encoding="utf-8")
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def test_reads_the_document_once_and_answers_from_memory(tmp_path, clock, monkeypatch):
    path = tmp_path / "flags.json"
    write(path, ON)
    opened = []
    real_open = open

    def counting_open(file, *args, **kwargs):
        if os.fspath(file) == os.fspath(path):
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    flags = rollgate.Flags(path, clock=clock)
    for _ in range(5):
        clock.advance(1.0)
        assert flags.flag_enabled("feature", "u")
    assert len(opened) == 1  # stat says nothing changed, so no re-read


def test_mtime_change_is_picked_up_after_the_interval(tmp_path, clock):
    path = tmp_path / "flags.json"
    write(path, ON, mtime_ns=1_000_000_000)
    flags = rollgate.Flags(path, clock=clock)
    assert flags.flag_enabled("feature", "u")
    # Same size, same inode: only the mtime differs.
    write(path, ON.replace('"percent": 100', '"percent": 0.0'), mtime_ns=2_000_000_000)
    assert os.stat(path).st_size == len(ON)
    clock.advance(0.5)
    assert flags.flag_enabled("feature", "u"), "checked again before a second passed"
    clock.advance(0.5)
    assert not flags.flag_enabled("feature", "u")
    assert flags.evaluate("feature", "u").reason == "percent"


def test_size_change_with_the_same_mtime_is_picked_up(tmp_path, clock):
    path = tmp_path / "flags.json"
    write(path, ON, mtime_ns=1_000_000_000)
    flags = rollgate.Flags(path, clock=clock)
    write(path, OFF, mtime_ns=1_000_000_000)
    clock.advance(1.0)
    assert not flags.flag_enabled("feature", "u")


def test_stats_at_most_once_per_interval(tmp_path, clock, monkeypatch):
    path = tmp_path / "flags.json"
    write(path, ON)
    stats = []
    real_stat = os.stat

    def counting_stat(target, *args, **kwargs):
        if os.fspath(target) == os.fspath(path):
            stats.append(clock())
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    flags = rollgate.Flags(path, clock=clock)
    assert len(stats) == 1
    for _ in range(1000):
        flags.flag_enabled("feature", "u")
        flags.variant("feature", "u")
    assert len(stats) == 1
    for step in range(1, 31):  # 3 seconds in 0.1 s steps
        clock.now = 1000.0 + step / 10
        flags.flag_enabled("feature", "u")
    assert len(stats) == 4, stats  # at 1001.0, 1002.0, 1003.0
    assert all(b - a >= 1.0 for a, b in zip(stats, stats[1:]))


def configmap_volume(root, generation, text, mtime_ns):
    """Writes one kubelet-style generation: ..<ts>/flags.json, swapped in via ..data."""
    data_dir = root / f"..2025_01_01_00_00_0{generation}.{generation}"
    data_dir.mkdir()
    write(data_dir / "flags.json", text, mtime_ns=mtime_ns)
    tmp_link = root / "..data_tmp"
    os.symlink(data_dir.name, tmp_link)
    os.replace(tmp_link, root / "..data")  # the atomic swap the kubelet does
    if not (root / "flags.json").is_symlink():
        os.symlink("..data/flags.json", root / "flags.json")
    return data_dir


def test_configmap_symlink_swap_is_picked_up_by_inode(tmp_path, clock):
    root = tmp_path / "volume"
    root.mkdir()
    first = configmap_volume(root, 1, ON, mtime_ns=5_000_000_000)
    flags = rollgate.Flags(root / "flags.json", clock=clock)
    assert flags.flag_enabled("feature", "u")
    # The new generation has the same size and mtime: only the inode tells it apart.
    second = configmap_volume(root, 2, ON.replace('"percent": 100', '"percent": 0.0'), mtime_ns=5_000_000_000)
    for old in first.iterdir():
        old.unlink()
    first.rmdir()
    assert os.stat(second / "flags.json").st_size == len(ON)
    clock.advance(1.0)
    assert not flags.flag_enabled("feature", "u")
    assert flags.reload_errors == 0


def test_malformed_new_file_keeps_the_last_good_flags(tmp_path, clock, caplog):
    path = tmp_path / "flags.json"
    write(path, ON)
    flags = rollgate.Flags(path, clock=clock)
    caplog.set_level(logging.ERROR, logger="rollgate")
    write(path, '{"schemaVersion": 1, "flags": {', mtime_ns=os.stat(path).st_mtime_ns + 10**9)
    clock.advance(1.0)
    assert flags.flag_enabled("feature", "u")
    assert flags.reload_errors == 1
    assert "keeping the 1 flags" in caplog.text and str(path) in caplog.text
    # The same bad file is not counted (or logged) again every second.
    caplog.clear()
    clock.advance(5.0)
    assert flags.flag_enabled("feature", "u")
    assert flags.reload_errors == 1 and caplog.text == ""
    # A newer operator's document is another error, with the version named.
    write(path, '{"schemaVersion": 3, "flags": {}}', mtime_ns=os.stat(path).st_mtime_ns + 10**9)
    clock.advance(1.0)
    assert flags.flag_enabled("feature", "u")
    assert flags.reload_errors == 2 and "schemaVersion 3" in flags.last_error
    # A good document is taken again.
    write(path, OFF, mtime_ns=os.stat(path).st_mtime_ns + 10**9)
    clock.advance(1.0)
    assert not flags.flag_enabled("feature", "u")
    assert flags.last_error is None and flags.reload_errors == 2


def test_deleted_file_keeps_the_last_good_flags(tmp_path, clock, caplog):
    path = tmp_path / "flags.json"
    write(path, ON)
    flags = rollgate.Flags(path, clock=clock)
    path.unlink()
    clock.advance(1.0)
    assert flags.flag_enabled("feature", "u")
    assert flags.reload_errors == 1 and "No such file" in caplog.text


@pytest.mark.parametrize("content", [None, "not json", '{"schemaVersion": 1, "flags": {"a": {"key": "b"}}}'])
def test_failed_first_load_turns_every_flag_off_without_raising(tmp_path, clock, caplog, content):
    path = tmp_path / "flags.json"
    if content is not None:
        write(path, content)
    flags = rollgate.Flags(path, clock=clock)
    assert not flags.loaded
    assert flags.reload_errors == 1
    assert "every flag is off" in caplog.text
    assert flags.flag_enabled("feature", "u") is False
    assert flags.variant("feature", "u") is None
    assert flags.evaluate("feature", None) == rollgate.Evaluation(False, None, "missing", None)
    # The operator publishes: the next check loads it.
    write(path, ON, mtime_ns=10**18)
    clock.advance(1.0)
    assert flags.flag_enabled("feature", "u") and flags.loaded


def test_unreadable_path_is_an_error_not_an_exception(tmp_path, clock):
    flags = rollgate.Flags(tmp_path, clock=clock)  # a directory
    assert not flags.flag_enabled("feature", "u")
    assert flags.reload_errors == 1


def test_refresh_checks_now(tmp_path, clock):
    path = tmp_path / "flags.json"
    write(path, ON)
    flags = rollgate.Flags(path, clock=clock)
    write(path, OFF)
    flags.refresh()
    assert not flags.flag_enabled("feature", "u")


def test_concurrent_readers_during_reloads(tmp_path):
    """Real clock, a zero interval and a writer swapping files: no reader ever raises."""
    path = tmp_path / "flags.json"
    write(path, ON)
    flags = rollgate.Flags(path, check_interval=0.0)
    errors = []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                assert flags.evaluate("feature", "u").reason in ("full-rollout", "percent", "missing")
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    for i in range(200):
        tmp = tmp_path / "flags.tmp"
        write(tmp, ON if i % 2 else OFF)
        os.replace(tmp, path)
    stop.set()
    for thread in threads:
        thread.join(timeout=10)
    assert not errors


class DjangoLikeUser:
    is_anonymous = False

    def __init__(self, pk):
        self.pk = pk


class Anonymous:
    is_anonymous = True
    pk = None


class IntSubclass(int):
    pass


def test_evaluation_is_truthy_only_when_enabled(tmp_path):
    path = tmp_path / "flags.json"
    write(path, OFF)
    flags = rollgate.Flags(path)
    assert not flags.evaluate("feature", "u") and not flags.evaluate("missing")
    enabled, variant, reason, rank, rule = flags.evaluate("feature", "u")
    assert (enabled, variant, reason, rule) == (False, None, "percent", None) and 0 <= rank < 10000
    write(path, ON, mtime_ns=10**18)
    flags.refresh()
    assert flags.evaluate("feature", "u")


def test_several_flags_at_once_answer_as_one_by_one_from_one_document(tmp_path, clock):
    path = tmp_path / "flags.json"
    entries = [
        flag_entry("half", percent=50),
        flag_entry("off", enabled=False),
        flag_entry("vip", percent=0, allowedUsers=["7"]),
        flag_entry(
            "ab",
            percent=100,
            variants=[{"name": "a", "weight": 50}, {"name": "b", "weight": 50}],
        ),
    ]
    write(path, document(*entries), mtime_ns=1_000_000_000)
    flags = rollgate.Flags(path, clock=clock)
    keys = ["half", "off", "missing", "vip", "ab", "half"]
    for user in [None, "7", 7, *(f"user-{i}" for i in range(200))]:
        assert flags.evaluate_many(keys, user) == [flags.evaluate(k, user) for k in keys]
        assert flags.flags_enabled(keys, user) == [flags.flag_enabled(k, user) for k in keys]
    assert flags.flags_enabled([], "u") == []
    # A new file: the next call checks once, before any answer, and answers from it alone.
    write(path, document(flag_entry("half", percent=100)), mtime_ns=2_000_000_000)
    clock.advance(1.0)
    assert flags.evaluate_many(["half", "off"], "u") == [
        rollgate.Evaluation(True, None, "full-rollout", None),
        rollgate.Evaluation(False, None, "missing", None),
    ]
    with rollgate.override_flag("off", True):
        assert flags.flags_enabled(["off", "half"], "u") == [True, True]


def test_user_ids():
    assert rollgate.user_id(None) is None
    assert rollgate.user_id("alice") == "alice"
    assert rollgate.user_id("") == ""  # a user, not "no user", as in the Rust SDK
    assert rollgate.user_id(42) == "42"
    assert rollgate.user_id(-7) == "-7"
    assert rollgate.user_id(IntSubclass(5)) == "5"
    assert rollgate.user_id(DjangoLikeUser(42)) == "42"
    assert rollgate.user_id(DjangoLikeUser("a1b2")) == "a1b2"
    assert rollgate.user_id(DjangoLikeUser(None)) is None  # unsaved
    assert rollgate.user_id(Anonymous()) is None
    for bad in (True, 1.5, b"42", object()):
        with pytest.raises(TypeError):
            rollgate.user_id(bad)


def test_int_and_str_ids_are_the_same_user(tmp_path):
    path = tmp_path / "flags.json"
    write(path, document(flag_entry("half", percent=50, variants=[{"name": "a", "weight": 50}, {"name": "b", "weight": 50}])))
    flags = rollgate.Flags(path)
    for n in range(200):
        assert flags.evaluate("half", n) == flags.evaluate("half", str(n))
        assert flags.evaluate("half", DjangoLikeUser(n)) == flags.evaluate("half", str(n))
        assert flags.flag_enabled("half", n) == flags.evaluate("half", str(n)).enabled
    assert flags.evaluate("half", Anonymous()).reason == "no-user"


def test_lone_surrogate_user_does_not_raise(tmp_path):
    path = tmp_path / "flags.json"
    write(path, document(flag_entry("half", percent=50)))
    flags = rollgate.Flags(path)
    assert flags.evaluate("half", "\ud800").reason == "percent"


def test_module_level_helpers_use_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "env-flags.json"
    write(path, document(flag_entry("from-env")))
    monkeypatch.setenv("ROLLGATE_FLAGS_PATH", str(path))
    # The Django tests in this run configure settings without ROLLGATE_FLAGS_PATH, so
    # the environment decides whether or not Django is set up yet.
    assert rollgate.default_path() == str(path)
    assert rollgate.flag_enabled("from-env", "u")
    assert rollgate.variant("from-env", "u") is None
    assert rollgate.evaluate("from-env").reason == "full-rollout"
    assert rollgate.flags_enabled(["from-env", "missing"], "u") == [True, False]
    assert [e.reason for e in rollgate.evaluate_many(["from-env"])] == ["full-rollout"]
    assert rollgate.default_client() is rollgate.default_client()


def run_python(code, env):
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    ).stdout.strip()


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("ROLLGATE_FLAGS_PATH", "DJANGO_SETTINGS_MODULE")}
    env.update(extra)
    return env


def test_default_path_without_django_settings(tmp_path):
    """In a fresh interpreter (no Django settings): environment, then the default path."""
    code = "import rollgate; print(rollgate.default_path())"
    assert run_python(code, clean_env()) == "/etc/rollgate/flags.json"
    assert run_python(code, clean_env(ROLLGATE_FLAGS_PATH=str(tmp_path / "x.json"))) == str(tmp_path / "x.json")
    # A missing default file: every flag off, an error logged, no exception.
    code = "import rollgate; print(rollgate.flag_enabled('a', 1), rollgate.default_client().reload_errors)"
    assert run_python(code, clean_env(ROLLGATE_FLAGS_PATH=str(tmp_path / "absent.json"))) == "False 1"


def test_override_flag_context_manager_and_decorator(tmp_path):
    path = tmp_path / "flags.json"
    write(path, OFF)
    flags = rollgate.Flags(path)
    assert not flags.flag_enabled("feature", "u")
    with rollgate.override_flag("feature", variant="treatment"):
        assert flags.flag_enabled("feature", "u")
        assert flags.variant("feature", None) == "treatment"
        assert flags.evaluate("feature", "u").reason == "override"
        with rollgate.override_flag("feature", active=False):
            assert not flags.flag_enabled("feature", "u")
        assert flags.flag_enabled("feature", "u")
        with rollgate.override_flag("unknown"):
            assert flags.flag_enabled("unknown")
    assert not flags.flag_enabled("feature", "u") and not flags.flag_enabled("unknown")

    @rollgate.override_flag("feature")
    def decorated():
        return flags.flag_enabled("feature", "u")

    assert decorated() and decorated()
    assert not flags.flag_enabled("feature", "u")
    with pytest.raises(ValueError):
        rollgate.override_flag("feature", active=False, variant="x")


def test_override_flag_on_async_functions_and_classes(tmp_path):
    import asyncio

    path = tmp_path / "flags.json"
    write(path, OFF)
    flags = rollgate.Flags(path)

    @rollgate.override_flag("feature")
    async def decorated():
        await asyncio.sleep(0)
        return flags.flag_enabled("feature", "u")

    assert asyncio.run(decorated())

    @rollgate.override_flag("feature", variant="b")
    class Tests:
        def test_one(self):
            return flags.variant("feature", "u")

        def helper(self):
            return flags.variant("feature", "u")

    assert Tests().test_one() == "b"
    assert Tests().helper() is None


def test_missing_file_is_logged_and_reported_by_health(tmp_path, clock, caplog):
    """Unlike the Rust client (which fails at start), a missing file serves every flag off,
    says so once on the log, and reports it through health() until a document arrives."""
    path = tmp_path / "flags.json"
    caplog.set_level(logging.ERROR, logger="rollgate")
    flags = rollgate.Flags(path, clock=clock)
    assert not flags.flag_enabled("on")
    assert "cannot read flag document" in caplog.text and str(path) in caplog.text
    health = flags.health()
    assert health["ok"] is False and health["flags"] == 0 and health["reload_errors"] == 1
    assert health["path"] == str(path) and str(path) in health["last_error"]
    path.write_text(document(flag_entry("on")), encoding="utf-8")
    clock.advance(1.0)
    assert flags.flag_enabled("on", "user-1")
    assert flags.health() == {
        "ok": True,
        "path": str(path),
        "flags": 1,
        "reload_errors": 1,
        "last_error": None,
    }


def _sharded_index(generation, shards):
    import hashlib
    import json

    return json.dumps(
        {
            "schemaVersion": 1,
            "generation": generation,
            "shards": [
                {
                    "configMap": f"rollgate-flags-shard-{i}",
                    "key": f"flags-shard-{i}.json",
                    "sha256": hashlib.sha256(text.encode()).hexdigest(),
                }
                for i, text in enumerate(shards)
            ],
        }
    )


def test_a_sharded_document_reads_as_one_and_never_mixes_generations(tmp_path, clock):
    path = tmp_path / "flags.json"
    shard = [tmp_path / f"flags-shard-{i}.json" for i in range(2)]
    first = [document(flag_entry("checkout")), document(flag_entry("search"))]
    for file, text in zip(shard, first):
        write(file, text)
    write(path, _sharded_index(1, first))
    flags = rollgate.Flags(path, clock=clock)
    assert flags.flag_enabled("checkout", "u") and flags.flag_enabled("search", "u")
    assert len(flags.flags) == 2

    # The index of generation 2 lands before its shard 1: generation 1 stays, whole.
    second = [first[0], document(flag_entry("search", enabled=False))]
    write(path, _sharded_index(2, second))
    clock.advance(1.0)
    assert flags.flag_enabled("search", "u")
    assert flags.reload_errors == 1
    assert "rollgate-flags-shard-1" in flags.last_error and "generation 2" in flags.last_error

    # The shard arrives; the index is read again although it did not change, and the failure
    # is counted once.
    clock.advance(1.0)
    assert flags.reload_errors == 1
    write(shard[1], second[1])
    clock.advance(1.0)
    assert not flags.flag_enabled("search", "u")
    assert flags.flag_enabled("checkout", "u")
    assert flags.last_error is None

    # A missing shard is named, and the flags stay.
    shard[0].unlink()
    write(path, _sharded_index(3, [document(flag_entry("checkout", enabled=False)), second[1]]))
    clock.advance(1.0)
    assert flags.flag_enabled("checkout", "u")
    assert "is missing" in flags.last_error


def test_an_index_is_not_a_document_without_its_shards():
    with pytest.raises(rollgate.FlagDocumentError, match="index of a sharded document"):
        rollgate.parse_document(_sharded_index(1, []))
