"""A real Celery worker process, fed through Redis, changing orders in PostgreSQL."""

import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from orders.choices import OrderState
from orders.models import Order
from orders.tasks import apply_deadlines
from tests.factories import advance, new_order

S = OrderState
ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.django_db(transaction=True)


def database_url():
    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def test_a_worker_runs_the_deadline_task_sent_through_the_broker(postgres, redis_url, merchant_org, provider_org):
    due = [new_order(merchant_org, provider_org, deadline_in=timedelta(hours=-1)) for _ in range(3)]
    delivered = advance(new_order(merchant_org, provider_org), S.DELIVERED)
    Order.objects.filter(pk=delivered.pk).update(auto_confirm_at=timezone.now() - timedelta(minutes=1))
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "DATABASE_URL": database_url(), "REDIS_URL": redis_url}
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "portal",
            "worker",
            "-Q",
            queue,
            "--concurrency",
            "1",
            "--without-mingle",
            "--without-gossip",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(worker.stdout), daemon=True)
    reader.start()
    try:
        # Send once the worker listens on its queue; a message routed to a
        # queue nobody has declared yet would have nowhere to go.
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up and not any("ready." in line for line in lines):
            time.sleep(0.2)
        apply_deadlines.apply_async(queue=queue)
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up and Order.objects.filter(pk__in=[o.pk for o in [*due, delivered]]).filter(
            state__in=[S.AWAITING_SHIPMENT, S.DELIVERED]
        ):
            time.sleep(0.5)
    finally:
        worker.terminate()
        worker.wait(timeout=30)
        reader.join(timeout=10)
        output = "".join(lines)

    assert Order.objects.filter(pk__in=[o.pk for o in due], state=S.AUTO_REFUNDED).count() == len(due), output
    delivered.refresh_from_db()
    assert delivered.state == S.COMPLETED, output
    assert "orders.tasks.apply_deadlines" in output and "succeeded" in output, output
