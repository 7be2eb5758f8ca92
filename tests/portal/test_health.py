"""``/health/``: no login, 200 when the database, cache, broker and beat's
heartbeat are fine, 503 when one is not; and the queues that keep the
deadlines and the sweep away from mail."""

from datetime import timedelta

import pytest
from django.utils import timezone
from kombu import Connection

from portal import health
from portal.celery import app
from portal.models import Heartbeat
from portal.tasks import record_beat_heartbeat

pytestmark = pytest.mark.django_db


def check(client, **headers):
    response = client.get("/health/", {"format": "json"}, **headers)
    return response.status_code, response.json()


def test_healthy_answers_200_without_login(client):
    record_beat_heartbeat()
    status, body = check(client)
    assert status == 200, body
    assert set(body.values()) == {"OK"} and len(body) == 4


def test_no_heartbeat_yet_answers_503(client):
    status, body = check(client)
    assert status == 503
    assert "no beat heartbeat" in body["BeatHeartbeat()"]


def test_a_stalled_beat_turns_it_red_after_three_periods(client, settings):
    settings.BEAT_HEARTBEAT_SECONDS = 60
    health.record_heartbeat(now=timezone.now() - timedelta(seconds=170))
    assert check(client)[0] == 200
    health.record_heartbeat(now=timezone.now() - timedelta(seconds=185))
    status, body = check(client)
    assert status == 503 and "old" in body["BeatHeartbeat()"]
    assert body["Database(alias='default')"] == "OK"


def test_an_unreachable_broker_turns_it_red(client, monkeypatch):
    record_beat_heartbeat()
    # Nothing listens on port 1: the connection is refused at once.
    monkeypatch.setattr(app, "connection_for_write", lambda: Connection("redis://127.0.0.1:1/0"))
    status, body = check(client)
    assert status == 503
    assert body["Broker()"].startswith("Unavailable: broker not reachable")


def test_the_heartbeat_task_keeps_one_row():
    record_beat_heartbeat()
    record_beat_heartbeat()
    assert Heartbeat.objects.get().name == health.BEAT


def test_a_malformed_accept_header_is_refused_not_an_error(client):
    record_beat_heartbeat()
    assert client.get("/health/", HTTP_ACCEPT="text/html;;;q=x, garbage").status_code == 406
    assert client.get("/health/", HTTP_ACCEPT="text/plain").status_code == 200


def test_deadlines_and_the_sweep_have_queues_of_their_own_and_carry_on_when_late(settings):
    def queue(name):
        return app.amqp.router.route({}, name)["queue"].name

    assert queue("orders.tasks.apply_deadlines") == "deadlines"
    assert queue("portal.tasks.record_beat_heartbeat") == "deadlines"
    assert queue("risks.tasks.run_sweep") == "sweep"
    assert queue("portal.tasks.deliver_due") == queue("portal.tasks.send_daily_digest") == "mail"
    schedule = settings.CELERY_BEAT_SCHEDULE
    for entry in ("apply-confirmation-deadlines", "risk-sweep", "beat-heartbeat"):
        assert "expires" not in schedule[entry].get("options", {}), entry
