"""Carrier scans: stored once, early ones kept, applied in the carrier's order."""

from datetime import timedelta

from django.utils import timezone

from orders import workflow
from orders.choices import Action, OrderState, ScanOutcome, ScanStatus
from orders.models import CarrierScan
from portal.choices import EventSource
from tests.factories import advance, new_order, scan

S = OrderState


def test_the_same_scan_twice_is_stored_once_and_applied_once(order):
    shipped = advance(order, S.INBOUND)
    when = timezone.now() - timedelta(hours=1)
    scan(shipped.inbound_tracking_no, ScanStatus.DELIVERED, occurred_at=when)
    scan(shipped.inbound_tracking_no, ScanStatus.DELIVERED, occurred_at=when)
    shipped.refresh_from_db()
    assert shipped.state == S.ARRIVED
    assert CarrierScan.objects.filter(tracking_no=shipped.inbound_tracking_no).count() == 1
    assert shipped.events.filter(action=Action.CARRIER_DELIVERY).count() == 1


def test_a_scan_for_an_unknown_number_waits_and_applies_when_the_merchant_records_it(order):
    delivered_at = timezone.now() - timedelta(hours=30)
    early = scan("SF7777777777", ScanStatus.DELIVERED, occurred_at=delivered_at)
    assert early.outcome == ScanOutcome.PENDING

    merchant = workflow.Actor.of_organisation(order.merchant)
    shipped = workflow.perform(order, Action.SHIP, merchant, carrier="SF", tracking_no="SF7777777777")

    assert shipped.state == S.ARRIVED
    assert shipped.inbound_delivered_at == delivered_at
    early.refresh_from_db()
    assert early.outcome == ScanOutcome.APPLIED and early.order == order


def test_a_scan_that_missed_its_number_is_applied_by_the_periodic_retry(order, monkeypatch, settings):
    """The scan and the merchant's shipment committed at the same moment,
    each unseen by the other: the scan waits until beat's retry finds it."""
    from orders.tasks import retry_pending_scans

    delivered_at = timezone.now() - timedelta(hours=30)
    early = scan("SF5555555555", ScanStatus.DELIVERED, occurred_at=delivered_at)
    stray = scan("SF0000000001", ScanStatus.DELIVERED, occurred_at=delivered_at)
    unseen = tuple(r for r in workflow.REACTIONS if r != "orders.carrier.on_step")
    with monkeypatch.context() as patch:
        patch.setattr(workflow, "REACTIONS", unseen)
        shipped = workflow.perform(
            order, Action.SHIP, workflow.Actor.of_organisation(order.merchant), carrier="SF", tracking_no="SF5555555555"
        )
    assert shipped.state == S.INBOUND  # the scan that would have moved it on went unseen

    assert retry_pending_scans() == 1
    shipped.refresh_from_db()
    assert shipped.state == S.ARRIVED and shipped.inbound_delivered_at == delivered_at
    early.refresh_from_db()
    stray.refresh_from_db()
    assert early.outcome == ScanOutcome.APPLIED and stray.outcome == ScanOutcome.PENDING
    assert retry_pending_scans() == 0  # nothing left that fits
    assert settings.CELERY_BEAT_SCHEDULE["retry-pending-scans"]["task"] == retry_pending_scans.name


def test_the_periodic_retry_reaches_every_order_however_many_wait(merchant_org, provider_org, platform, monkeypatch):
    """Scans that rightly keep waiting (a delivery reported before its pickup)
    do not hide the ones behind them from the retry, page after page."""
    from orders import carrier

    when = timezone.now() - timedelta(hours=2)
    for _ in range(3):
        printed = advance(new_order(merchant_org, provider_org), S.WAYBILL_PRINTED)
        early = scan(printed.waybill_no, ScanStatus.DELIVERED, occurred_at=when)
        assert early.outcome == ScanOutcome.PENDING
    late = new_order(merchant_org, provider_org)
    scan("SF6666666666", ScanStatus.DELIVERED, occurred_at=when)
    with monkeypatch.context() as patch:
        patch.setattr(workflow, "REACTIONS", tuple(r for r in workflow.REACTIONS if r != "orders.carrier.on_step"))
        workflow.perform(
            late, Action.SHIP, workflow.Actor.of_organisation(late.merchant), carrier="SF", tracking_no="SF6666666666"
        )

    assert carrier.retry_pending(page=1) == 1
    late.refresh_from_db()
    assert late.state == S.ARRIVED
    assert CarrierScan.objects.filter(outcome=ScanOutcome.PENDING).count() == 3


def test_a_scan_naming_an_order_that_does_not_exist_yet_applies_when_it_is_created(
    merchant_org, provider_org, platform
):
    scan("SF4444444444", ScanStatus.PICKED_UP, order_no="O-LATER-1")
    created = new_order(merchant_org, provider_org, order_no="O-LATER-1")
    assert created.state == S.INBOUND
    assert created.inbound_tracking_no == "SF4444444444"


def test_a_delivery_scan_that_overtakes_the_pickup_waits_for_it(order):
    printed = advance(order, S.WAYBILL_PRINTED)
    picked, delivered = timezone.now() - timedelta(hours=20), timezone.now() - timedelta(hours=2)

    early = scan(printed.waybill_no, ScanStatus.DELIVERED, occurred_at=delivered)
    printed.refresh_from_db()
    assert early.outcome == ScanOutcome.PENDING and printed.state == S.WAYBILL_PRINTED

    scan(printed.waybill_no, ScanStatus.PICKED_UP, occurred_at=picked)
    printed.refresh_from_db()
    assert printed.state == S.DELIVERED
    assert (printed.picked_up_at, printed.delivered_at) == (picked, delivered)


def test_a_scan_that_comes_after_the_order_moved_on_is_ignored(order):
    signed = advance(order, S.SIGNED_IN, signed_by_scan=False)
    late = scan(signed.inbound_tracking_no, ScanStatus.DELIVERED)
    signed.refresh_from_db()
    assert late.outcome == ScanOutcome.IGNORED and signed.state == S.SIGNED_IN


def test_the_carrier_may_report_the_merchants_parcel_before_the_merchant_does(order):
    scan("ZT1212121212", ScanStatus.PICKED_UP, order_no=order.order_no, carrier_name="ZTO")
    order.refresh_from_db()
    assert order.state == S.INBOUND
    assert (order.inbound_carrier, order.inbound_tracking_no) == ("ZTO", "ZT1212121212")


def test_one_parcel_carrying_several_orders_delivers_them_all(merchant_org, provider_org, platform):
    merchant = workflow.Actor.of_organisation(merchant_org)
    orders = [new_order(merchant_org, provider_org, trade_no="T-PARCEL", sku="S") for _ in range(2)]
    for o in orders:
        workflow.perform(o, Action.SHIP, merchant, carrier="SF", tracking_no="SF3030303030")
    scan("SF3030303030", ScanStatus.DELIVERED)
    for o in orders:
        o.refresh_from_db()
        assert o.state == S.ARRIVED


def test_the_carrier_actor_is_the_system(order):
    shipped = advance(order, S.INBOUND)
    scan(shipped.inbound_tracking_no, ScanStatus.DELIVERED)
    event = shipped.events.order_by("-seq").first()
    assert event.source == EventSource.CARRIER
    assert event.actor_user is None and event.actor_organisation is None
    assert workflow.Actor.system(EventSource.CARRIER).role == "system"
