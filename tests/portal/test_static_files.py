"""Production serves static files collected with hashed names (``collectstatic``
with whitenoise's manifest storage, docs/deploy.md): every file the portal
ships must survive that, references between them included."""

from django.core.management import call_command


def test_collectstatic_builds_the_manifest_of_every_shipped_file(settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    # Django's manifest storage rewrites references (url(), source maps,
    # imports) as whitenoise's does, without compressing every file.
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
    }
    call_command("collectstatic", interactive=False, verbosity=0)
    manifest = (tmp_path / "staticfiles.json").read_text()
    assert "vendor/chartjs/chart.umd.min.js" in manifest
    assert "htmx" in manifest
