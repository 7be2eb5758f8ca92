"""The deadline windows are declared once (``orders.choices``); the screens
that state them in words must say the same numbers."""

from pathlib import Path

from django.conf import settings

from orders.choices import DEADLINE_AT_RISK_HOURS, DEADLINE_NEAR_HOURS
from risks.models import RiskSettings

TEMPLATES = Path(settings.BASE_DIR) / "templates"


def test_risk_settings_start_from_the_declared_deadline_windows():
    defaults = RiskSettings()
    assert defaults.deadline_at_risk_hours == DEADLINE_AT_RISK_HOURS
    assert defaults.pending_sign_in_high_within_hours == DEADLINE_NEAR_HOURS


def test_the_highlight_legend_states_the_declared_windows():
    legend = (TEMPLATES / "orders" / "_results.html").read_text()
    assert f"under {DEADLINE_AT_RISK_HOURS} h away, in amber under {DEADLINE_NEAR_HOURS} h" in legend


def test_the_dashboard_states_the_declared_window():
    home = (TEMPLATES / "portal" / "dashboard_tiles.html").read_text()
    assert f"Deadline within {DEADLINE_AT_RISK_HOURS} h, not delivered" in home
