"""Races on real PostgreSQL row locks (SPEC §2.2 invariant 5, §8 concurrency)."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from orders import carrier, errors, expiry, workflow
from orders.choices import Action, AppraisalResult, OrderState, ScanOutcome, ScanStatus
from orders.models import CarrierScan, Order, OrderEvent
from portal.choices import EventSource
from tests.factories import advance, new_order

S = OrderState
pytestmark = pytest.mark.django_db(transaction=True)


def run_together(*calls):
    """Run the calls in threads released at the same moment; return what each
    returned or raised, in call order."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def runner(index, call):
        try:
            prepared = call()  # e.g. each person loads the order first
            barrier.wait(timeout=10)
            outcomes[index] = prepared()
        except Exception as exc:
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


def test_two_people_moving_one_order_at_once_one_wins_one_gets_a_conflict(postgres, merchant_org, provider_org):
    arrived = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    provider = workflow.Actor.of_organisation(provider_org, EventSource.WEB)

    def person():
        mine = Order.objects.get(pk=arrived.pk)
        return lambda: workflow.perform(mine, Action.SIGN_IN, provider)

    outcomes = run_together(person, person)

    winners = [o for o in outcomes if isinstance(o, Order)]
    losers = [o for o in outcomes if isinstance(o, errors.Conflict)]
    assert len(winners) == 1 and len(losers) == 1, outcomes
    assert OrderEvent.objects.filter(order=arrived, action=Action.SIGN_IN).count() == 1
    arrived.refresh_from_db()
    assert arrived.state == S.SIGNED_IN and arrived.version == OrderEvent.objects.filter(order=arrived).count()


def test_two_passes_in_one_split_group_at_once_only_one_is_recorded(postgres, merchant_org, provider_org, platform):
    first = advance(new_order(merchant_org, provider_org, trade_no="T-RACE", sku="S"), S.SIGNED_IN)
    second = advance(new_order(merchant_org, provider_org, trade_no="T-RACE", sku="S"), S.SIGNED_IN)
    provider = workflow.Actor.of_organisation(provider_org, EventSource.API)

    def appraise(order):
        def load():
            mine = Order.objects.get(pk=order.pk)
            return lambda: workflow.perform(mine, Action.APPRAISE, provider, result=AppraisalResult.PASS)

        return load

    outcomes = run_together(appraise(first), appraise(second))

    assert sum(isinstance(o, Order) for o in outcomes) == 1, outcomes
    assert sum(isinstance(o, errors.SplitGroupAlreadyAppraised) for o in outcomes) == 1, outcomes
    assert Order.objects.filter(trade_no="T-RACE", appraisal_result=AppraisalResult.PASS).count() == 1


def test_two_orders_of_one_trade_and_sku_created_at_once_form_a_split_group(
    postgres, merchant_org, provider_org, platform, monkeypatch
):
    from orders.models import SplitGroup

    new_order(merchant_org, provider_org)  # the platform organisation exists before the threads start
    # Each creation lingers before its commit, so without a lock both would
    # look for the other before either is visible.
    monkeypatch.setattr(workflow, "CREATION_REACTIONS", (*workflow.CREATION_REACTIONS, lambda *args: time.sleep(0.3)))

    def create():
        return lambda: new_order(merchant_org, provider_org, trade_no="T-TWIN", sku="S")

    outcomes = run_together(create, create)

    assert all(isinstance(o, Order) for o in outcomes), outcomes
    assert SplitGroup.objects.filter(trade_no="T-TWIN", sku="S", closed_at__isnull=True).count() == 1


def test_two_deadline_runs_at_once_move_each_order_once(postgres, merchant_org, provider_org, platform):
    due = [new_order(merchant_org, provider_org, deadline_in=timedelta(hours=-1)) for _ in range(40)]

    def run():
        return lambda: expiry.apply_deadlines(batch_size=7)

    outcomes = run_together(run, run)

    assert all(isinstance(o, dict) for o in outcomes), outcomes
    assert sum(o["auto_refunded"] for o in outcomes) == len(due)
    for order in due:
        assert OrderEvent.objects.filter(order=order, action=Action.EXPIRE).count() == 1
    assert not Order.objects.filter(pk__in=[o.pk for o in due]).exclude(state=S.AUTO_REFUNDED).exists()


def test_the_same_scan_posted_twice_at_once_is_applied_once(postgres, merchant_org, provider_org, platform):
    shipped = advance(new_order(merchant_org, provider_org), S.INBOUND)
    when = timezone.now() - timedelta(minutes=3)

    def post():
        return lambda: carrier.record_scan(
            carrier="SF", tracking_no=shipped.inbound_tracking_no, status=ScanStatus.DELIVERED, occurred_at=when
        )

    outcomes = run_together(post, post)

    assert sorted(created for _, created in outcomes) == [False, True], outcomes
    assert CarrierScan.objects.filter(tracking_no=shipped.inbound_tracking_no).count() == 1
    assert OrderEvent.objects.filter(order=shipped, action=Action.CARRIER_DELIVERY).count() == 1


def test_two_requests_with_one_idempotency_key_at_once_act_once(postgres, merchant_org, provider_org, keys):
    from rest_framework.test import APIClient

    arrived = advance(new_order(merchant_org, provider_org), S.ARRIVED)

    def request():
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {keys['provider']}", HTTP_IDEMPOTENCY_KEY="once")
        return lambda: client.post(f"/api/v1/orders/{arrived.order_no}/sign-in/", {}, format="json")

    outcomes = run_together(request, request)

    assert [o.status_code for o in outcomes] == [200, 200], outcomes
    assert sorted(o.get("Idempotent-Replayed", "") for o in outcomes) == ["", "true"]
    assert outcomes[0].json() == outcomes[1].json()
    assert OrderEvent.objects.filter(order=arrived, action=Action.SIGN_IN).count() == 1


def test_the_same_order_created_twice_at_once_is_created_once(postgres, merchant_org, provider_org, keys):
    from rest_framework.test import APIClient

    paid = timezone.now() - timedelta(hours=1)
    body = {
        "order_no": "RACE-1",
        "trade_no": "T-RACE-1",
        "merchant": merchant_org.code,
        "provider": provider_org.code,
        "sku": "SKU-1",
        "item_title": "Handbag",
        "quantity": 1,
        "amount": "8800.00",
        "paid_at": paid.isoformat(),
        "auto_confirm_at": (paid + timedelta(days=10)).isoformat(),
    }

    def request(data):
        def prepare():
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=f"Token {keys['platform']}")
            return lambda: client.post("/api/v1/orders/", data, format="json")

        return prepare

    same = run_together(request(body), request(body))
    assert sorted(o.status_code for o in same) == [200, 201], same
    assert Order.objects.filter(order_no="RACE-1").count() == 1

    other = {**body, "order_no": "RACE-2"}
    different = run_together(request(other), request({**other, "amount": "1.00"}))
    assert sorted(o.status_code for o in different) == [201, 409], different
    assert {o.json().get("code") for o in different if o.status_code == 409} == {"order_exists"}
    assert OrderEvent.objects.filter(order__order_no__in=["RACE-1", "RACE-2"], action=Action.CREATE).count() == 2


def test_two_sweeps_at_once_leave_one_case_and_one_escalation_per_hit(postgres, merchant_org, provider_org, platform):
    from orders.models import Order
    from risks.choices import Rule
    from risks.models import CaseEvent, Escalation, RiskCase
    from risks.sweep import run_sweep

    now = timezone.now()
    stuck = [new_order(merchant_org, provider_org, deadline_in=timedelta(days=20)) for _ in range(15)]
    Order.objects.filter(pk__in=[o.pk for o in stuck]).update(state_changed_at=now - timedelta(hours=60))
    blocked = advance(new_order(merchant_org, provider_org, deadline_in=timedelta(days=20)), S.SIGNED_IN)
    Order.objects.filter(pk=blocked.pk).update(flow_blocked=True, blocked_stage="entry")

    def sweep():
        return lambda: run_sweep()

    outcomes = run_together(sweep, sweep, sweep)

    assert not any(isinstance(o, Exception) for o in outcomes), outcomes
    assert RiskCase.objects.filter(rule=Rule.STALLED).count() == 15
    assert RiskCase.objects.filter(rule=Rule.FLOW_BLOCKED).count() == 1
    assert Escalation.objects.count() == 1
    assert CaseEvent.objects.filter(kind="opened").count() == 16
    assert sum(sum(o.opened.values()) for o in outcomes) == 16


def test_a_scan_racing_a_sign_in_decides_on_the_signed_in_order(
    postgres, merchant_org, provider_org, platform, monkeypatch
):
    shipped = advance(new_order(merchant_org, provider_org), S.INBOUND)
    provider = workflow.Actor.of_organisation(provider_org, EventSource.WEB)
    # The sign-in holds its lock a moment before it commits; the scan arrives meanwhile.
    monkeypatch.setattr(workflow, "REACTIONS", (*workflow.REACTIONS, lambda *args: time.sleep(0.5)))

    def sign_in():
        mine = Order.objects.get(pk=shipped.pk)
        return lambda: workflow.perform(mine, Action.SIGN_IN, provider)

    def scan():
        def post():
            time.sleep(0.15)
            return carrier.record_scan(
                carrier="SF",
                tracking_no=shipped.inbound_tracking_no,
                status=ScanStatus.DELIVERED,
                occurred_at=timezone.now() - timedelta(minutes=1),
            )

        return post

    signed, (stored, created) = run_together(sign_in, scan)

    assert isinstance(signed, Order) and created, (signed, stored)
    stored.refresh_from_db()
    assert stored.outcome == ScanOutcome.IGNORED  # the parcel was already signed for
    shipped.refresh_from_db()
    assert shipped.state == S.SIGNED_IN
    assert not OrderEvent.objects.filter(order=shipped, action=Action.CARRIER_DELIVERY).exists()


def test_two_scan_batches_locking_orders_in_opposite_order_both_land(
    postgres, merchant_org, provider_org, platform, monkeypatch
):
    import hashlib
    import hmac
    import json

    from rest_framework.test import APIClient

    from portal.models import CarrierIntegration

    secret = "carrier-secret-for-the-race"
    CarrierIntegration.objects.create(name="sf-express", secret=secret, carrier_codes="SF")
    first, second = (advance(new_order(merchant_org, provider_org), S.INBOUND) for _ in range(2))
    # Each step holds its order a moment, so the two batches meet head-on.
    monkeypatch.setattr(workflow, "REACTIONS", (*workflow.REACTIONS, lambda *args: time.sleep(0.3)))
    when = timezone.now() - timedelta(minutes=5)

    def batch(orders, minutes):
        events = [
            {
                "carrier": "SF",
                "tracking_no": order.inbound_tracking_no,
                "status": "delivered",
                "occurred_at": (when + timedelta(minutes=minutes)).isoformat(),
            }
            for order in orders
        ]
        raw = json.dumps({"events": events}).encode()
        signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()

        def post():
            response = APIClient().generic(
                "POST", "/api/v1/carrier-events/", raw, content_type="application/json", HTTP_X_SIGNATURE=signature
            )
            return response.status_code, response.json()

        return lambda: post

    outcomes = run_together(batch([first, second], 0), batch([second, first], 1))

    assert [code for code, _ in outcomes] == [200, 200], outcomes
    assert CarrierScan.objects.count() == 4
    for order in (first, second):
        order.refresh_from_db()
        assert order.state == S.ARRIVED
        assert OrderEvent.objects.filter(order=order, action=Action.CARRIER_DELIVERY).count() == 1


def test_the_sweep_does_not_close_a_split_group_while_an_order_joins_it(
    postgres, merchant_org, provider_org, platform, monkeypatch
):
    from orders.models import SplitGroup
    from risks import rules
    from risks.models import RiskSettings
    from risks.sweep import _close_finished_groups
    from tests.factories import platform_actor

    for _ in range(2):
        finished = new_order(merchant_org, provider_org, trade_no="T-JOIN", sku="S")
        workflow.perform(finished, Action.REFUND, platform_actor(), reason="buyer cancelled")
    # The third order lingers between its insert and its commit; the sweep comes meanwhile.
    monkeypatch.setattr(workflow, "REACTIONS", (*workflow.REACTIONS, lambda *args: time.sleep(0.6)))

    def create():
        return lambda: new_order(merchant_org, provider_org, trade_no="T-JOIN", sku="S")

    def sweep():
        def close():
            time.sleep(0.2)
            now = timezone.now()
            _close_finished_groups(rules.Context.build(now, RiskSettings.current()), now)

        return close

    created, _ = run_together(create, sweep)

    assert isinstance(created, Order), created
    assert SplitGroup.objects.get(trade_no="T-JOIN").closed_at is None
