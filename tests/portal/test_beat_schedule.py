"""Celery beat runs each periodic job on the interval its setting names.

Names alone would pass if an entry kept its task but lost its interval (a
typed-in 60 where the setting says otherwise), so every interval is checked
against its setting, and once more with the settings read from a changed
environment, which a hard-coded number cannot follow.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from celery.schedules import crontab
from django.conf import settings

from portal.celery import app

# entry -> (task, the setting holding its interval in seconds)
INTERVALS = {
    "apply-confirmation-deadlines": ("orders.tasks.apply_deadlines", "DEADLINE_SWEEP_SECONDS"),
    "risk-sweep": ("risks.tasks.run_sweep", "RISK_SWEEP_SECONDS"),
    "deliver-notifications": ("portal.tasks.deliver_due", "NOTIFY_DELIVERY_SECONDS"),
    "retry-pending-scans": ("orders.tasks.retry_pending_scans", "PENDING_SCAN_RETRY_SECONDS"),
    "beat-heartbeat": ("portal.tasks.record_beat_heartbeat", "BEAT_HEARTBEAT_SECONDS"),
    "refresh-stage-durations": ("orders.tasks.refresh_stage_durations", "STAGE_DURATIONS_SECONDS"),
    "refresh-dashboard-tallies": ("portal.tasks.refresh_dashboard_tallies", "DASHBOARD_TALLY_SECONDS"),
    "resume-stalled-imports": ("orders.imports.resume_stalled", "IMPORT_STALL_SECONDS"),
}
DIGEST = ("daily-digest", "portal.tasks.send_daily_digest")


def test_beat_schedules_exactly_the_known_jobs_and_each_task_exists():
    assert set(settings.CELERY_BEAT_SCHEDULE) == set(INTERVALS) | {DIGEST[0]}
    app.loader.import_default_modules()
    for name, entry in settings.CELERY_BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, name


def test_each_periodic_job_runs_on_the_interval_of_its_setting():
    schedule = settings.CELERY_BEAT_SCHEDULE
    for name, (task, setting) in INTERVALS.items():
        assert schedule[name]["task"] == task
        assert schedule[name]["schedule"] == getattr(settings, setting), name


def test_the_daily_digest_goes_out_at_nine_every_day_shanghai_time():
    name, task = DIGEST
    entry = settings.CELERY_BEAT_SCHEDULE[name]
    assert entry["task"] == task
    digest = entry["schedule"]
    assert isinstance(digest, crontab)
    assert digest.hour == {9} and digest.minute == {0}
    assert digest.day_of_week == set(range(7)) and digest.day_of_month == set(range(1, 32))
    assert digest.month_of_year == set(range(1, 13))
    assert settings.CELERY_TIMEZONE == "Asia/Shanghai"
    assert str(app.conf.timezone) == "Asia/Shanghai"


def test_the_intervals_follow_their_settings_when_the_environment_changes():
    # Distinct values, none a default, so a swapped or hard-coded interval shows.
    chosen = {setting: 17 + 7 * i for i, (_, setting) in enumerate(INTERVALS.values())}
    env = {**os.environ, **{k: str(v) for k, v in chosen.items()}, "DJANGO_SETTINGS_MODULE": "portal.settings"}
    script = (
        "import json, django; django.setup(); from django.conf import settings; "
        "print(json.dumps({k: v['schedule'] for k, v in settings.CELERY_BEAT_SCHEDULE.items() "
        "if isinstance(v['schedule'], float)}))"
    )
    ran = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=Path(settings.BASE_DIR),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    seen = json.loads(ran.stdout.strip().splitlines()[-1])
    assert seen == {name: float(chosen[setting]) for name, (_, setting) in INTERVALS.items()}


def test_the_stage_durations_refresh_runs_on_the_sweep_queue():
    route = settings.CELERY_TASK_ROUTES["orders.tasks.refresh_stage_durations"]
    assert route == {"queue": settings.CELERY_QUEUE_SWEEP} and settings.CELERY_QUEUE_SWEEP == "sweep"
    assert settings.CELERY_BEAT_SCHEDULE["refresh-stage-durations"]["schedule"] == 15 * 60.0
