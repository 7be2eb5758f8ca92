"""A carrier's batch of scans applied as a set: the same end as scan by scan, in
a number of queries that does not grow with the batch, and safe when two
batches meet."""

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.db import DatabaseError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from orders import carrier, errors, workflow
from orders.choices import Action, AppraisalResult, OrderState, ScanOutcome, ScanStatus
from orders.models import CarrierScan, FeeCharge, Order, OrderEvent
from portal.choices import EventSource
from portal.models import CarrierIntegration, Notification
from risks.choices import Rule
from risks.models import CaseEvent, Escalation, RiskCase
from risks.sweep import run_sweep
from tests.factories import advance, new_order, platform_actor, scan

S = OrderState
SECRET = "carrier-secret-for-batches"
PICKED_UP, DELIVERED = ScanStatus.PICKED_UP, ScanStatus.DELIVERED


@pytest.fixture
def integration(db):
    return CarrierIntegration.objects.create(name="sf-express", secret=SECRET, carrier_codes="SF")


def event(number, status, when, order_no=""):
    return {"carrier": "SF", "tracking_no": number, "status": status, "occurred_at": when, "order_no": order_no}


def post(events):
    """The webhook, signed, as a carrier sends it."""
    body = {"events": [{**e, "occurred_at": e["occurred_at"].isoformat()} for e in events]}
    raw = json.dumps(body).encode()
    signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    response = APIClient().generic(
        "POST", "/api/v1/carrier-events/", raw, content_type="application/json", HTTP_X_SIGNATURE=signature
    )
    assert response.status_code == 200, response.content
    return response.json()


def one_by_one(events):
    """The per-scan path the webhook took before: each scan stored with its
    own insert, then each applied in its own transaction, then the answer
    read back."""
    with transaction.atomic():
        stored = [carrier.store_scan(**e) for e in events]
    carrier.apply_stored([s.pk for s, created in stored if created])
    current = CarrierScan.objects.select_related("order").in_bulk([s.pk for s, _ in stored])
    results = [
        {
            "tracking_no": s.tracking_no,
            "status": s.status,
            "duplicate": not created,
            "outcome": current[s.pk].outcome,
            "order_no": current[s.pk].order.order_no if current[s.pk].order_id else None,
        }
        for s, created in stored
    ]
    saved = sum(created for _, created in stored)
    return {"received": len(results), "stored": saved, "duplicates": len(results) - saved, "results": results}


def contents() -> dict:
    """What the database holds after a batch, without what the wall clock or
    the id sequences decide (ids of rows written during the batch, times of
    writing)."""
    scans = CarrierScan.objects.order_by("carrier", "tracking_no", "status", "occurred_at", "order_no")
    cases = {c.pk: (c.rule, c.subject) for c in RiskCase.objects.all()}
    return {
        "orders": list(Order.objects.order_by("pk").values()),
        "events": list(
            OrderEvent.objects.order_by("order_id", "seq").values(
                "order_id", "seq", "action", "source", "from_state", "to_state", "payload", "occurred_at"
            )
        ),
        "fees": list(
            FeeCharge.objects.order_by("order_id", "kind").values(
                "order_id", "kind", "amount", "waybill_no", "charged_at"
            )
        ),
        "scans": list(scans.values("carrier", "tracking_no", "status", "occurred_at", "order_no", "order", "outcome")),
        "cases": sorted(
            RiskCase.objects.values_list("rule", "subject", "order_id", "severity", "status", "resolution", "note")
        ),
        "case_events": sorted((cases[e.case_id], e.kind, e.note) for e in CaseEvent.objects.all()),
        "escalations": sorted(
            (e.order_id, cases.get(e.case_id), e.category, e.status, e.raised_by_rule) for e in Escalation.objects.all()
        ),
        "notifications": Counter(Notification.objects.values_list("recipient_id", "kind")),
    }


def outcome_of(run):
    """Run ``run`` and read what it left, then undo it all."""
    with transaction.atomic():
        answer = run()
        held = contents()
        transaction.set_rollback(True)
    return answer, held


@pytest.fixture
def taken_as_a_set(monkeypatch):
    """The orders ``workflow.perform_set`` moved, to show a batch went the set's way."""
    moved = []
    real = workflow.perform_set

    def spy(steps, actor):
        results = real(steps, actor)
        moved.extend(r.order_no for r in results if isinstance(r, Order))
        return results

    monkeypatch.setattr(workflow, "perform_set", spy)
    return moved


def test_a_mixed_batch_ends_as_applying_its_scans_one_by_one_would(
    integration, merchant_org, provider_org, platform, taken_as_a_set
):
    def order(**fields):
        return new_order(merchant_org, provider_org, **fields)

    inbound = [advance(order(), S.INBOUND) for _ in range(3)]
    printed = [advance(order(), S.WAYBILL_PRINTED) for _ in range(3)]
    outbound = advance(order(), S.OUTBOUND)
    failed = advance(order(), S.OUTBOUND, result=AppraisalResult.FAIL)
    at_risk = advance(order(deadline_in=timedelta(hours=30)), S.OUTBOUND)
    early, overtaken, waited = (advance(order(), S.WAYBILL_PRINTED) for _ in range(3))
    packed = advance(order(), S.PACKED)
    arrived = advance(order(), S.ARRIVED)
    awaiting = order()
    refunded = workflow.perform(advance(order(), S.INBOUND), Action.REFUND, platform_actor(), reason="buyer left")
    grouped = [advance(order(trade_no="T-GROUP", sku="S"), S.INBOUND) for _ in range(2)]
    parcel = [order(trade_no="T-PARCEL", sku="P") for _ in range(2)]
    for o in parcel:
        workflow.perform(o, Action.SHIP, workflow.Actor.of_organisation(merchant_org), carrier="SF", tracking_no="SF77")
    base = timezone.now().replace(microsecond=0) - timedelta(hours=10)
    # An earlier batch brought the delivery before its pickup: it waits.
    assert scan(waited.waybill_no, DELIVERED, occurred_at=base + timedelta(hours=3)).outcome == ScanOutcome.PENDING
    run_sweep()  # the deadline at risk and the split groups have their cases
    assert RiskCase.objects.filter(rule=Rule.DEADLINE_AT_RISK, order=at_risk).exists()

    def at(hours):
        return base + timedelta(hours=hours)

    events = [
        # one step each, alone on their orders: the set's
        *(event(o.inbound_tracking_no, DELIVERED, at(1)) for o in inbound),
        *(event(o.waybill_no, PICKED_UP, at(1)) for o in printed),
        event(outbound.waybill_no, DELIVERED, at(2)),
        event(failed.waybill_no, DELIVERED, at(2)),
        event(at_risk.waybill_no, DELIVERED, at(2)),
        event(waited.waybill_no, PICKED_UP, at(2)),
        # the same scan again, in this batch and from the earlier one
        event(inbound[0].inbound_tracking_no, DELIVERED, at(1)),
        event(waited.waybill_no, DELIVERED, at(3)),
        # a delivery before any pickup: it waits
        event(early.waybill_no, DELIVERED, at(4)),
        # a delivery that overtook its pickup, both in this batch
        event(overtaken.waybill_no, DELIVERED, at(5)),
        event(overtaken.waybill_no, PICKED_UP, at(4)),
        # the order named under other numbers: offline, twice, in the carrier's order
        event("YT0000000002", PICKED_UP, at(4), order_no=packed.order_no),
        event("YT0000000001", PICKED_UP, at(4), order_no=packed.order_no),
        # late: the parcel was signed for already
        event(arrived.inbound_tracking_no, PICKED_UP, at(1)),
        # the carrier reports the merchant's parcel first, delivered: two steps
        event("ZT5550000001", DELIVERED, at(4), order_no=awaiting.order_no),
        # a finished order, a number nobody has, an order that does not exist
        event(refunded.inbound_tracking_no, DELIVERED, at(4)),
        event("SF0000000404", DELIVERED, at(4)),
        event("SF0000000405", DELIVERED, at(4), order_no="O-NOT-YET"),
        # one parcel for two orders; two orders of one split group
        event("SF77", DELIVERED, at(4)),
        *(event(o.inbound_tracking_no, DELIVERED, at(4)) for o in grouped),
    ]

    before, by_scan = outcome_of(lambda: one_by_one(events))
    answer, by_set = outcome_of(lambda: post(events))

    assert answer == before
    for table in by_scan:
        assert by_set[table] == by_scan[table], table
    assert sorted(taken_as_a_set) == sorted(o.order_no for o in [*inbound, *printed, outbound, failed, at_risk, waited])
    # What the batch did, so that a comparison of two wrong answers fails too.
    outcomes = {(r["tracking_no"], r["status"]): r["outcome"] for r in answer["results"]}
    assert outcomes[(overtaken.waybill_no, DELIVERED)] == ScanOutcome.APPLIED
    assert outcomes[(early.waybill_no, DELIVERED)] == ScanOutcome.PENDING
    assert outcomes[("YT0000000001", PICKED_UP)] == ScanOutcome.OFFLINE
    assert outcomes[(arrived.inbound_tracking_no, PICKED_UP)] == ScanOutcome.IGNORED
    assert outcomes[(waited.waybill_no, DELIVERED)] == ScanOutcome.APPLIED
    assert answer["duplicates"] == 2
    states = {row["order_no"]: row["state"] for row in by_set["orders"]}
    assert states[failed.order_no] == S.RETURNED and states[awaiting.order_no] == S.ARRIVED
    assert all(states[o.order_no] == S.OUTBOUND for o in printed)
    fees = {(f["order_id"], f["kind"]) for f in by_set["fees"]}
    assert {(failed.pk, "appraisal"), *((o.pk, "logistics") for o in printed)} <= fees
    assert any(c[0] == Rule.DEADLINE_AT_RISK and c[5] for c in by_set["cases"])  # resolved by the delivery
    assert any(c[0] == Rule.OFFLINE_SHIPMENT for c in by_set["cases"])


def test_the_risk_reaction_reads_the_thresholds_once_for_the_whole_set(
    integration, merchant_org, provider_org, platform, taken_as_a_set
):
    at_risk = [
        advance(new_order(merchant_org, provider_org, deadline_in=timedelta(hours=30)), S.OUTBOUND) for _ in range(3)
    ]
    grouped = [
        advance(new_order(merchant_org, provider_org, trade_no="T-SHARED", sku="S"), S.INBOUND) for _ in range(2)
    ]
    run_sweep()
    live = RiskCase.objects.live()
    assert live.filter(rule=Rule.DEADLINE_AT_RISK).count() == 3
    assert live.filter(rule=Rule.SPLIT_ORDER, subject="group:T-SHARED/S").exists()
    when = timezone.now().replace(microsecond=0) - timedelta(minutes=5)
    events = [event(o.waybill_no, DELIVERED, when) for o in at_risk]
    events.append(event(grouped[0].inbound_tracking_no, DELIVERED, when))

    with CaptureQueriesContext(connection) as queries:
        answer = post(events)

    assert {r["outcome"] for r in answer["results"]} == {ScanOutcome.APPLIED}
    assert sorted(taken_as_a_set) == sorted(o.order_no for o in [*at_risk, grouped[0]])
    # The orders' own cases and the split group's are asked with one context.
    assert sum("risks_risksettings" in q["sql"] for q in queries) == 1
    assert not live.filter(rule=Rule.DEADLINE_AT_RISK).exists()  # the deliveries cleared them
    assert live.filter(rule=Rule.SPLIT_ORDER, subject="group:T-SHARED/S").exists()  # still split


def one_step_batch(merchant_org, provider_org, size):
    """``size`` orders, half waiting for the inbound delivery, half for the
    courier's pickup, and the scans that move each one step."""
    when = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    events = []
    for index in range(size):
        o = new_order(merchant_org, provider_org)
        if index % 2:
            o = advance(o, S.WAYBILL_PRINTED)
            events.append(event(o.waybill_no, PICKED_UP, when))
        else:
            o = advance(o, S.INBOUND)
            events.append(event(o.inbound_tracking_no, DELIVERED, when))
    return events


def test_a_batch_of_one_step_scans_costs_the_same_queries_whatever_its_size(
    integration, merchant_org, provider_org, platform
):
    # SQLite splits a statement at 999 parameters; PostgreSQL takes a whole batch.
    sizes = (50, 100) if connection.vendor == "postgresql" else (30, 60)
    counted = []
    for size in sizes:
        events = one_step_batch(merchant_org, provider_org, size)
        with CaptureQueriesContext(connection) as queries:
            answer = post(events)
        assert Counter(r["outcome"] for r in answer["results"]) == {ScanOutcome.APPLIED: size}
        counted.append(len(queries))
    # The carrier's, the workflow's and the risk reaction's share alike: the
    # same for any batch (the reaction looks up every moved order's live
    # cases at once).
    assert counted[0] == counted[1] <= 17, counted


def test_a_set_that_fails_half_way_is_undone_and_applied_scan_by_scan(
    integration, merchant_org, provider_org, platform, monkeypatch, caplog
):
    """The set's last reaction fails after its orders, events and fees were
    written: none of that stays, and the scans take the per-scan path."""

    def fails_for_a_set(steps, actor):
        raise DatabaseError("the outbox is locked for too long")

    @workflow.set_wise(fails_for_a_set)
    def noted(order, event, actor, params):
        return None

    monkeypatch.setattr(workflow, "REACTIONS", (*workflow.REACTIONS, noted))
    events = one_step_batch(merchant_org, provider_org, 4)
    steps = OrderEvent.objects.filter(action__in=[Action.CARRIER_PICKUP, Action.CARRIER_DELIVERY])
    before, fees = steps.count(), FeeCharge.objects.count()

    answer = post(events)

    assert "could not be applied as a set" in caplog.text
    assert [r["outcome"] for r in answer["results"]] == [ScanOutcome.APPLIED] * 4
    assert not CarrierScan.objects.filter(outcome=ScanOutcome.PENDING).exists()
    assert steps.count() == before + 4  # each order moved once, not once by the set and once again
    assert FeeCharge.objects.count() == fees + 2
    for o in Order.objects.all():
        assert o.version == o.events.count()


def test_the_set_takes_steps_by_the_workflows_own_rules(merchant_org, provider_org, platform):
    shipped = advance(new_order(merchant_org, provider_org), S.INBOUND)
    printed = advance(new_order(merchant_org, provider_org), S.WAYBILL_PRINTED)
    finished = advance(new_order(merchant_org, provider_org), S.REFUNDED)
    actor = workflow.Actor.system(EventSource.CARRIER)
    when = timezone.now() - timedelta(minutes=5)
    params = {"carrier": "SF", "tracking_no": "SF0000000999"}
    with transaction.atomic():
        locked = Order.objects.select_for_update().in_bulk([shipped.pk, printed.pk, finished.pk])
        results = workflow.perform_set(
            [
                workflow.Step(locked[shipped.pk], Action.CARRIER_DELIVERY, params, when),
                # not the online waybill: refused as ``perform`` refuses it
                workflow.Step(locked[printed.pk], Action.CARRIER_PICKUP, params, when),
                workflow.Step(locked[finished.pk], Action.CARRIER_DELIVERY, params),
            ],
            actor,
        )
    moved, offline, terminal = results
    assert isinstance(offline, errors.NotOnlineWaybill) and isinstance(terminal, errors.OrderIsTerminal)
    shipped.refresh_from_db()
    assert moved.state == shipped.state == S.ARRIVED and shipped.inbound_delivered_at == when
    last = shipped.events.order_by("-seq").first()
    assert (last.seq, last.action, last.from_state, last.to_state) == (
        shipped.version,
        "carrier_delivery",
        S.INBOUND,
        S.ARRIVED,
    )
    assert last.payload == {
        "changes": {"inbound_delivered_at": when.isoformat(), "state": "arrived", "state_changed_at": when.isoformat()},
        "params": params,
    }
    printed.refresh_from_db()
    assert printed.state == S.WAYBILL_PRINTED and printed.version == locked[printed.pk].version


def run_at_once(*calls):
    """Each call in its own thread, started together; what each returned or raised."""
    start = threading.Barrier(len(calls))
    answers = [None] * len(calls)

    def run(index, call):
        try:
            start.wait(timeout=10)
            answers[index] = call()
        except Exception as exc:  # the test reads it
            answers[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return answers


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_overlapping_batches_at_once_lose_no_scan(
    postgres, integration, merchant_org, provider_org, platform, monkeypatch
):
    orders = [advance(new_order(merchant_org, provider_org), S.INBOUND) for _ in range(12)]
    printed = [advance(new_order(merchant_org, provider_org), S.WAYBILL_PRINTED) for _ in range(6)]
    when = timezone.now().replace(microsecond=0) - timedelta(hours=2)
    deliveries = [event(o.inbound_tracking_no, DELIVERED, when) for o in orders]
    pickups = [event(o.waybill_no, PICKED_UP, when) for o in printed]
    late = [event(o.waybill_no, DELIVERED, when + timedelta(minutes=30)) for o in printed]
    # Each step holds its order a moment, so the two batches meet on the shared orders.
    monkeypatch.setattr(workflow, "REACTIONS", (*workflow.REACTIONS, lambda *args: time.sleep(0.02)))
    first = [*deliveries[:8], *pickups, *late[:3]]
    second = [*reversed(deliveries[4:]), *late[3:], *reversed(pickups[:2])]

    stored = CarrierScan.objects.count()

    answers = run_at_once(lambda: post(first), lambda: post(second))

    assert all(isinstance(a, dict) for a in answers), answers
    assert CarrierScan.objects.count() == stored + len(deliveries) + len(pickups) + len(late)
    assert not CarrierScan.objects.filter(outcome=ScanOutcome.PENDING).exists()
    for o in orders:
        o.refresh_from_db()
        assert o.state == S.ARRIVED
        assert o.events.filter(action=Action.CARRIER_DELIVERY).count() == 1
    for o in printed:
        o.refresh_from_db()
        assert o.state == S.DELIVERED, o
        assert [e.action for e in o.events.order_by("seq")][-2:] == [Action.CARRIER_PICKUP, Action.CARRIER_DELIVERY]
        assert FeeCharge.objects.filter(order=o).count() == 1
    for o in Order.objects.all():
        assert o.version == o.events.count() and list(o.events.values_list("seq", flat=True)) == list(
            range(1, o.version + 1)
        )
