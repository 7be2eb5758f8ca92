"""SMTP frozen while a confirmation deadline falls due: the deadline is
applied on time, because the deadlines have a queue and a worker of their own.

A server that accepts connections and never says a word holds the mail
worker in its time-out; the deadlines worker carries on. The drill plays
beat: it asks for ``deliver_due`` (mail) first, then ``apply_deadlines``
every half second from the moment the deadline passes.
"""

import contextlib
import logging
import socket
import threading
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from orders import workflow
from orders.choices import OrderState
from orders.models import Order
from orders.tasks import apply_deadlines
from portal.models import EmailStatus, Notification
from portal.tasks import deliver_due
from risks import cases
from tests.factories import new_order
from tests.integration.worker import queue_worker

logger = logging.getLogger(__name__)
pytestmark = pytest.mark.django_db(transaction=True)


class SilentSmtp:
    """A TCP server that accepts connections and never answers (no greeting)."""

    def __init__(self):
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.connected = threading.Event()
        self.held = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        with contextlib.suppress(OSError):
            while True:
                conn, _addr = self.listener.accept()
                self.held.append(conn)  # kept open, never written to
                self.connected.set()

    def close(self):
        self.listener.close()
        for conn in self.held:
            conn.close()
        self.held.clear()


def test_a_deadline_is_applied_on_time_while_the_mail_server_hangs(
    postgres, portal_on, personas, merchant_org, provider_org
):
    smtp = SilentSmtp()
    env = {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp.port), "EMAIL_TIMEOUT": "30"}
    # Mail waiting to go out: an escalation tells the operators.
    escalated = new_order(merchant_org, provider_org)
    cases.escalate_order(escalated, workflow.Actor.of_user(personas["merchant"]), "please help")
    assert Notification.objects.filter(email_status=EmailStatus.PENDING).exists()
    order = new_order(merchant_org, provider_org, deadline_in=timedelta(seconds=3))
    try:
        with (
            queue_worker("mail", "mail", portal_on.url, **env) as (_mail, mail_lines),
            queue_worker("work", "deadlines,sweep,portal", portal_on.url, **env) as (_work, work_lines),
        ):
            deliver_due.apply_async()
            assert smtp.connected.wait(15), "".join(mail_lines)  # the mail worker is now stuck in its time-out
            due = Order.objects.get(pk=order.pk).auto_confirm_at
            while timezone.now() < due:
                time.sleep(0.05)
            applied_at = None
            give_up = time.monotonic() + 15
            while time.monotonic() < give_up:
                apply_deadlines.apply_async()  # as beat would, every DEADLINE_SWEEP_SECONDS
                time.sleep(0.5)
                if Order.objects.filter(pk=order.pk, state=OrderState.AUTO_REFUNDED).exists():
                    applied_at = timezone.now()  # seen applied (at most one poll late)
                    break
            mail_still_hanging = not any("deliver_due" in line and "succeeded" in line for line in mail_lines)
            # Let go of the mail worker, so that it stops at once.
            smtp.close()
    finally:
        smtp.close()

    assert applied_at is not None, "".join(work_lines)
    delay = (applied_at - due).total_seconds()
    logger.warning(
        "smtp drill: deadline applied %.2f s after it fell due; mail still hanging: %s", delay, mail_still_hanging
    )
    # Behind the mail it would wait out the 30 s SMTP time-out; on its own queue
    # it is applied at the next nudge (the bound leaves room for a busy machine).
    assert delay < 10, delay
    assert mail_still_hanging, "the drill must apply the deadline while the mail worker is held"
    assert Notification.objects.filter(email_status=EmailStatus.SENT).count() == 0
