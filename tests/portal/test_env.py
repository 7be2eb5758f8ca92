"""Settings come from the environment through strict readers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal.env import env_bool, env_int, env_list, env_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("raw", "expected"), [("1", True), ("TRUE", True), ("off", False), ("0", False), ("", False)])
def test_booleans_read_the_usual_spellings(monkeypatch, raw, expected):
    monkeypatch.setenv("X_FLAG", raw)
    assert env_bool("X_FLAG") is expected


@pytest.mark.parametrize("raw", ["flase", "2", "enabled"])
def test_a_malformed_boolean_stops_start_up(monkeypatch, raw):
    monkeypatch.setenv("X_FLAG", raw)
    with pytest.raises(ImproperlyConfigured, match="X_FLAG"):
        env_bool("X_FLAG")


def test_integers_are_checked_and_bounded(monkeypatch):
    monkeypatch.setenv("X_NUM", "12")
    assert env_int("X_NUM", 5, minimum=1) == 12
    monkeypatch.setenv("X_NUM", "twelve")
    with pytest.raises(ImproperlyConfigured, match="whole number"):
        env_int("X_NUM", 5)
    monkeypatch.setenv("X_NUM", "0")
    with pytest.raises(ImproperlyConfigured, match="at least 1"):
        env_int("X_NUM", 5, minimum=1)
    monkeypatch.delenv("X_NUM")
    assert env_int("X_NUM", 5) == 5


def test_lists_refuse_empty_items(monkeypatch):
    monkeypatch.setenv("X_HOSTS", "a.example, b.example")
    assert env_list("X_HOSTS") == ["a.example", "b.example"]
    monkeypatch.setenv("X_HOSTS", "a.example,,b")
    with pytest.raises(ImproperlyConfigured):
        env_list("X_HOSTS")


def test_urls_must_use_an_expected_scheme(monkeypatch):
    monkeypatch.setenv("X_URL", "mysql://db/portal")
    with pytest.raises(ImproperlyConfigured, match="postgres://"):
        env_url("X_URL", ("postgres", "sqlite"))


def _manage(*args, **env):
    """Run manage.py with ``env`` on top of a clean environment; a value of ``None`` unsets the variable."""
    drop = {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", *(k for k, v in env.items() if v is None)}
    clean = {k: v for k, v in os.environ.items() if k not in drop}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **{k: v for k, v in env.items() if v is not None}},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_mode_refuses_to_start_without_a_secret_key():
    result = _manage("check", DEBUG="0", ALLOWED_HOSTS="portal.example.com")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_mode_passes_the_deployment_checklist():
    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="0",
        SECRET_KEY="k" * 20 + "a-real-random-production-secret-9f8e7d6c5b4a",
        ALLOWED_HOSTS="portal.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def _setting(expression, **env):
    """What ``expression`` (of ``settings``) prints with ``env`` on top of a clean environment."""
    result = _manage("shell", "-c", f"from django.conf import settings; print({expression})", **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("bind", "expected"),
    [("127.0.0.1:8123", "http://127.0.0.1:8123"), ("0.0.0.0:8124", "http://127.0.0.1:8124")],
)
def test_links_in_emails_follow_the_bind_address_when_site_url_is_unset(bind, expected):
    assert _setting("settings.SITE_URL", PORTAL_BIND=bind, SITE_URL=None) == expected


def test_site_url_wins_over_the_bind_address():
    site = _setting("settings.SITE_URL", PORTAL_BIND="127.0.0.1:8123", SITE_URL="https://portal.example.com/")
    assert site == "https://portal.example.com"


def test_postgresql_connections_run_without_jit(postgres):
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        assert cursor.fetchone()[0] == "off"


OPTIONS = "settings.DATABASES['default']['OPTIONS'].get('options')"


def test_options_in_the_database_url_come_after_the_jit_switch():
    url = "postgres://portal@127.0.0.1:5432/portal?options=-c%20jit%3Don"
    assert _setting(OPTIONS, DATABASE_URL=url) == "-c jit=off -c jit=on"


def test_the_jit_switch_can_be_left_to_the_server():
    url = "postgres://portal@127.0.0.1:5432/portal?options=-c%20a%3D1&options=-c%20b%3D2"
    assert _setting(OPTIONS, DATABASE_URL=url, DB_JIT_OFF="0") == "-c a=1 -c b=2"


def test_a_web_process_freezes_what_it_loaded_with_its_views_among_it():
    # In a process of its own: the freeze lasts as long as the process.
    script = (
        "import gc, sys; before = gc.get_freeze_count(); import portal.wsgi; "
        "print(before, gc.get_freeze_count(), 'orders.views.lists' in sys.modules)"
    )
    result = _manage("shell", "-c", script)
    assert result.returncode == 0, result.stderr
    before, frozen, views = result.stdout.split()[-3:]
    assert (before, views) == ("0", "True") and int(frozen) > 50_000
