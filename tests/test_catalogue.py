"""The zh-hans catalogue is complete, compiled, and used."""

import shutil
from pathlib import Path

import polib
from django.core.management import call_command
from django.template.loader import render_to_string
from django.utils import translation

from tests.conftest import unavailable

ROOT = Path(__file__).resolve().parents[1]
LOCALE = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES"
SOURCES = ("orders", "portal", "risks", "templates")


def test_every_string_has_a_chinese_translation():
    catalogue = polib.pofile(str(LOCALE / "django.po"))
    untranslated = [e.msgid for e in catalogue if not e.translated() and not e.obsolete]
    assert untranslated == []
    assert not [e.msgid for e in catalogue if "fuzzy" in e.flags]


def test_the_compiled_catalogue_matches_the_source():
    source = {(e.msgctxt, e.msgid): e.msgstr for e in polib.pofile(str(LOCALE / "django.po")) if e.translated()}
    compiled = {(e.msgctxt, e.msgid): e.msgstr for e in polib.mofile(str(LOCALE / "django.mo")) if e.msgid}
    assert compiled == source, "run `make messages` and commit locale/"


def test_the_catalogue_holds_every_string_in_the_code(tmp_path, monkeypatch):
    if not shutil.which("xgettext"):
        unavailable("GNU gettext (xgettext)")
    # Extract afresh from a scratch copy of the sources and locale/ (makemessages
    # writes into the locale/ beside the sources) and compare the message ids.
    scratch = tmp_path / "src"
    for name in SOURCES:
        shutil.copytree(ROOT / name, scratch / name, ignore=shutil.ignore_patterns("__pycache__", "migrations"))
    shutil.copytree(LOCALE.parent.parent, scratch / "locale")
    monkeypatch.chdir(scratch)
    call_command("makemessages", locale=["zh_Hans"], no_obsolete=True, verbosity=0)
    ours = {e.msgid for e in polib.pofile(str(LOCALE / "django.po"))}
    found = {e.msgid for e in polib.pofile(str(scratch / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"))}
    assert found - ours == set(), "strings missing from the catalogue: run `make messages` and translate them"


def test_pages_speak_chinese_by_default(rf):
    with translation.override("zh-hans"):
        page = render_to_string("registration/login.html", {"form": None}, request=rf.get("/login/"))
    assert "登录" in page and "Log in" not in page
