"""A real Celery worker process, fed through Redis, changing orders in PostgreSQL."""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from orders.choices import OrderState
from orders.models import Order
from orders.tasks import apply_deadlines
from tests.factories import advance, new_order
from tests.integration.worker import celery_worker

S = OrderState
pytestmark = pytest.mark.django_db(transaction=True)


def test_a_worker_runs_the_deadline_task_sent_through_the_broker(postgres, redis_url, merchant_org, provider_org):
    due = [new_order(merchant_org, provider_org, deadline_in=timedelta(hours=-1)) for _ in range(3)]
    delivered = advance(new_order(merchant_org, provider_org), S.DELIVERED)
    Order.objects.filter(pk=delivered.pk).update(auto_confirm_at=timezone.now() - timedelta(minutes=1))

    with celery_worker(redis_url) as (_process, queue, lines):
        apply_deadlines.apply_async(queue=queue)
        give_up = time.monotonic() + 120
        while time.monotonic() < give_up and Order.objects.filter(pk__in=[o.pk for o in [*due, delivered]]).filter(
            state__in=[S.AWAITING_SHIPMENT, S.DELIVERED]
        ):
            time.sleep(0.5)
    output = "".join(lines)

    assert Order.objects.filter(pk__in=[o.pk for o in due], state=S.AUTO_REFUNDED).count() == len(due), output
    delivered.refresh_from_db()
    assert delivered.state == S.COMPLETED, output
    assert "orders.tasks.apply_deadlines" in output and "succeeded" in output, output
