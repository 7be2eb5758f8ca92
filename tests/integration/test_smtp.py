"""Notifications against a real SMTP server (aiosmtpd): refusals are retried,
a hanging server costs at most EMAIL_TIMEOUT, and a worker killed while it
sends delivers exactly once in the end."""

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
from aiosmtpd.controller import Controller
from django.utils import timezone

from orders import workflow
from portal import delivery
from portal.models import EmailStatus, Notification
from risks import cases
from tests.factories import new_order
from tests.integration.worker import celery_worker


class Recorder:
    """An SMTP handler that keeps what it accepted and can refuse or stall on cue."""

    def __init__(self, refuse_first=0, stall_rcpt=None, stall_data=0.0):
        self.accepted = []
        self.refuse_first = refuse_first
        self.stall_rcpt = stall_rcpt  # a threading.Event: RCPT waits until it is set
        self.stall_data = stall_data
        self.stalling = threading.Event()

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.stall_rcpt is not None and not self.stall_rcpt.is_set():
            self.stalling.set()
            while not self.stall_rcpt.is_set():
                await asyncio.sleep(0.05)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.stall_data:
            await asyncio.sleep(self.stall_data)
        if self.refuse_first > 0:
            self.refuse_first -= 1
            return "451 4.3.0 Temporarily unable to accept, try again"
        self.accepted.append(envelope.content)
        return "250 Message accepted"


@pytest.fixture
def smtp(settings):
    servers = []

    def start(handler):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        controller = Controller(handler, hostname="127.0.0.1", port=port)
        controller.start()
        servers.append(controller)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST = "127.0.0.1"
        settings.EMAIL_PORT = port
        settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
        return controller

    yield start
    for controller in servers:
        controller.stop()


def one_notification(personas, merchant_org, provider_org):
    order = new_order(merchant_org, provider_org)
    escalation = cases.escalate_order(order, workflow.Actor.of_user(personas["merchant"]), "please help")
    # Two operators would get it; keep one, so counting deliveries is counting one person's mail.
    Notification.objects.exclude(recipient=personas["operator"]).delete()
    return Notification.objects.get(), escalation


def test_a_temporary_refusal_is_retried_and_delivered_once(smtp, personas, merchant_org, provider_org):
    handler = Recorder(refuse_first=1)
    smtp(handler)
    row, _escalation = one_notification(personas, merchant_org, provider_org)

    assert delivery.deliver_due() == {"sent": 0, "failed": 1}
    row.refresh_from_db()
    assert row.email_status == EmailStatus.PENDING and "451" in row.last_error and row.attempts == 1
    assert handler.accepted == []

    Notification.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now())
    assert delivery.deliver_due() == {"sent": 1, "failed": 0}
    assert delivery.deliver_due() == {"sent": 0, "failed": 0}
    row.refresh_from_db()
    assert row.email_status == EmailStatus.SENT and row.attempts == 2
    assert len(handler.accepted) == 1
    assert b"Message-ID: <notification-" in handler.accepted[0]


def test_a_hanging_server_holds_the_worker_no_longer_than_the_timeout(
    smtp, settings, personas, merchant_org, provider_org
):
    settings.EMAIL_TIMEOUT = 2
    handler = Recorder(stall_data=30)
    smtp(handler)
    row, _escalation = one_notification(personas, merchant_org, provider_org)

    started = time.monotonic()
    assert delivery.deliver_due() == {"sent": 0, "failed": 1}
    elapsed = time.monotonic() - started

    assert elapsed < settings.EMAIL_TIMEOUT + 3, elapsed
    row.refresh_from_db()
    assert row.email_status == EmailStatus.PENDING and "timed out" in row.last_error.lower()


def children_of(pid):
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


@pytest.mark.django_db(transaction=True)
def test_a_worker_child_killed_while_sending_leads_to_exactly_one_delivery(
    postgres, redis_url, smtp, personas, merchant_org, provider_org
):
    from portal.tasks import deliver_due

    gate = threading.Event()
    handler = Recorder(stall_rcpt=gate)
    controller = smtp(handler)
    row, _escalation = one_notification(personas, merchant_org, provider_org)
    env = {
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(controller.port),
        "EMAIL_TIMEOUT": "30",
        "NOTIFY_LEASE_SECONDS": "3",
    }
    with celery_worker(redis_url, **env) as (worker, queue, lines):
        deliver_due.apply_async(queue=queue)
        assert handler.stalling.wait(30), "".join(lines)

        # The child is in the middle of the SMTP conversation: kill it outright.
        (child,) = children_of(worker.pid)
        os.kill(child, signal.SIGKILL)
        gate.set()
        row.refresh_from_db()
        assert row.email_status == EmailStatus.SENDING and handler.accepted == []

        # Beat asks again once the dead worker's lease is over.
        time.sleep(3.5)
        deliver_due.apply_async(queue=queue)
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            row.refresh_from_db()
            if row.email_status == EmailStatus.SENT:
                break
            time.sleep(0.3)
        time.sleep(2)  # a late duplicate would arrive now
        deliver_due.apply_async(queue=queue)
        time.sleep(2)

    row.refresh_from_db()
    assert row.email_status == EmailStatus.SENT, "".join(lines)
    assert len(handler.accepted) == 1, "".join(lines)
