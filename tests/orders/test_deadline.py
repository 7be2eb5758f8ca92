"""SPEC §2.1's deadline: past auto_confirm_at, delivered completes, anything else is a loss."""

from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from orders import expiry
from orders.choices import Action, AppraisalResult, FeeKind, OrderState
from orders.models import FeeCharge, Order
from orders.tasks import apply_deadlines as deadline_task
from portal.choices import EventSource
from tests.factories import advance, new_order

S = OrderState


def test_a_delivered_order_past_its_deadline_completes_at_the_deadline(merchant_org, provider_org, platform):
    order = advance(new_order(merchant_org, provider_org), S.DELIVERED)
    deadline = timezone.now() - timedelta(minutes=5)
    # The clock has run out while the buyer has not confirmed.
    Order.objects.filter(pk=order.pk).update(auto_confirm_at=deadline)

    assert expiry.apply_deadlines() == {"completed": 1, "auto_refunded": 0}

    order.refresh_from_db()
    assert order.state == S.COMPLETED
    assert order.confirmed_at == deadline == order.state_changed_at
    event = order.events.get(seq=order.version)
    assert (event.action, event.source, event.from_state, event.occurred_at) == (
        Action.EXPIRE,
        EventSource.SWEEP,
        S.DELIVERED,
        deadline,
    )
    fee = FeeCharge.objects.get(order=order, kind=FeeKind.APPRAISAL)
    assert fee.amount == Decimal("30.00") and fee.charged_at == deadline


def test_an_undelivered_order_past_its_deadline_is_auto_refunded(merchant_org, provider_org, platform):
    order = advance(new_order(merchant_org, provider_org, deadline_in=timedelta(seconds=-1)), S.PACKED)
    assert expiry.apply_deadlines() == {"completed": 0, "auto_refunded": 1}
    order.refresh_from_db()
    assert order.state == S.AUTO_REFUNDED
    assert not FeeCharge.objects.filter(order=order, kind=FeeKind.APPRAISAL).exists()


def test_orders_before_their_deadline_are_left_alone(order):
    assert expiry.apply_deadlines() == {"completed": 0, "auto_refunded": 0}
    order.refresh_from_db()
    assert order.state == S.AWAITING_SHIPMENT and order.version == 1


def test_a_second_run_changes_nothing(merchant_org, provider_org, platform):
    for _ in range(3):
        new_order(merchant_org, provider_org, deadline_in=timedelta(hours=-1))
    assert expiry.apply_deadlines() == {"completed": 0, "auto_refunded": 3}
    assert expiry.apply_deadlines() == {"completed": 0, "auto_refunded": 0}


def test_many_due_orders_are_handled_in_batches(merchant_org, provider_org, platform):
    due = [new_order(merchant_org, provider_org, deadline_in=timedelta(hours=-2)) for _ in range(7)]
    delivered = advance(new_order(merchant_org, provider_org), S.DELIVERED, result=AppraisalResult.NOT_REQUIRED)
    Order.objects.filter(pk=delivered.pk).update(auto_confirm_at=timezone.now() - timedelta(hours=1))

    assert expiry.apply_deadlines(batch_size=3) == {"completed": 1, "auto_refunded": 7}
    for order in due:
        order.refresh_from_db()
        assert order.state == S.AUTO_REFUNDED
        assert order.events.filter(action=Action.EXPIRE).count() == 1
    delivered.refresh_from_db()
    assert delivered.state == S.COMPLETED
    assert not FeeCharge.objects.filter(order=delivered, kind=FeeKind.APPRAISAL).exists()


def test_the_celery_task_applies_the_deadline(merchant_org, provider_org, platform):
    order = new_order(merchant_org, provider_org, deadline_in=timedelta(hours=-1))
    assert deadline_task() == {"completed": 0, "auto_refunded": 1}
    order.refresh_from_db()
    assert order.state == S.AUTO_REFUNDED


def test_beat_runs_the_deadline_task_on_its_schedule():
    entry = settings.CELERY_BEAT_SCHEDULE["apply-confirmation-deadlines"]
    assert entry["task"] == deadline_task.name
    assert entry["schedule"] == settings.DEADLINE_SWEEP_SECONDS
