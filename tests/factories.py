"""Factories and a driver that moves orders through the real workflow."""

from datetime import timedelta
from decimal import Decimal

import factory
from django.utils import timezone

from orders import carrier, workflow
from orders.choices import Action, AppraisalResult, OrderState, ScanStatus
from portal.choices import EventSource, OrganisationKind
from portal.models import Organisation, User

S = OrderState


class OrganisationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Organisation
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"ORG-{n}")
    name = factory.LazyAttribute(lambda o: f"Organisation {o.code}")
    kind = OrganisationKind.MERCHANT
    appraisal_fee = Decimal("30.00")
    logistics_fee = Decimal("12.00")


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    organisation = factory.SubFactory(OrganisationFactory)
    language = "en"
    password = factory.django.Password("correct horse battery staple")


_order_numbers = iter(range(1, 10**9))


def new_order(merchant, provider, *, trade_no=None, sku="SKU-1", deadline_in=timedelta(days=10), **fields):
    """A fresh order, created the way the platform creates one."""
    platform = Organisation.objects.get_or_create(
        code="PLATFORM", defaults={"name": "Platform", "kind": OrganisationKind.PLATFORM}
    )[0]
    number = next(_order_numbers)
    now = timezone.now()
    values = {
        "order_no": f"O{number:08d}",
        "trade_no": trade_no or f"T{number:08d}",
        "merchant": merchant,
        "provider": provider,
        "sku": sku,
        "item_title": "Sneakers",
        "quantity": 1,
        "amount": Decimal("1234.50"),
        "paid_at": now - timedelta(hours=1),
        "auto_confirm_at": now + deadline_in,
    }
    values.update(fields)
    return workflow.create_order(workflow.Actor.of_organisation(platform, EventSource.PLATFORM), **values)


def platform_actor():
    org = Organisation.objects.get(code="PLATFORM")
    return workflow.Actor.of_organisation(org, EventSource.PLATFORM)


def advance(order, target, *, result=AppraisalResult.PASS, signed_by_scan=True):
    """Drive ``order`` along the online flow until it is in ``target``, as
    its merchant, provider, carrier and the platform would, and return it."""
    merchant = workflow.Actor.of_organisation(order.merchant, EventSource.API)
    provider = workflow.Actor.of_organisation(order.provider, EventSource.API)
    if target == S.REFUNDED:
        return workflow.perform(order, Action.REFUND, platform_actor(), reason="buyer refunded")
    if target == S.AUTO_REFUNDED:
        return workflow.perform(order, Action.EXPIRE, workflow.Actor.system(EventSource.SWEEP))
    if target == S.RETURNED:
        result = AppraisalResult.FAIL
    while order.state != target:
        state = order.state
        if state == S.AWAITING_SHIPMENT:
            order = workflow.perform(order, Action.SHIP, merchant, carrier="SF", tracking_no=f"SF{order.pk:08d}")
        elif state == S.INBOUND:
            if signed_by_scan:
                scan(order.inbound_tracking_no, ScanStatus.DELIVERED)
                order.refresh_from_db()
            else:
                order = workflow.perform(order, Action.SIGN_IN, provider)
        elif state == S.ARRIVED:
            order = workflow.perform(order, Action.SIGN_IN, provider)
        elif state == S.SIGNED_IN:
            order = workflow.perform(order, Action.APPRAISE, provider, result=result)
        elif state == S.APPRAISED:
            if order.appraisal_result == AppraisalResult.NOT_REQUIRED and target != S.INSPECTED:
                order = workflow.perform(order, Action.PRINT_WAYBILL, provider)
            else:
                order = workflow.perform(order, Action.INSPECT, provider)
        elif state == S.INSPECTED:
            order = workflow.perform(order, Action.PACK, provider)
        elif state == S.PACKED:
            order = workflow.perform(order, Action.PRINT_WAYBILL, provider)
        elif state == S.WAYBILL_PRINTED:
            scan(order.waybill_no, ScanStatus.PICKED_UP)
            order.refresh_from_db()
        elif state == S.OUTBOUND:
            scan(order.waybill_no, ScanStatus.DELIVERED)
            order.refresh_from_db()
        elif state == S.DELIVERED and target == S.COMPLETED:
            order = workflow.perform(order, Action.CONFIRM, platform_actor())
        else:
            raise AssertionError(f"cannot drive {order} from {state} to {target}")
    return order


def scan(tracking_no, status, *, occurred_at=None, order_no="", carrier_name="SF"):
    """Report a carrier scan as the carrier integration does."""
    record, _ = carrier.record_scan(
        carrier=carrier_name,
        tracking_no=tracking_no,
        status=status,
        occurred_at=occurred_at or timezone.now(),
        order_no=order_no,
    )
    return record


def order_body(now=None, **overrides):
    """The body of ``POST /api/v1/orders/`` for the conftest personas' organisations.

    Pass the same ``now`` to get the same body twice (a repeat of a creation)."""
    now = now or timezone.now().replace(microsecond=0)
    data = {
        "order_no": "API-1",
        "trade_no": "T-API-1",
        "merchant": "M-1",
        "provider": "P-1",
        "sku": "SKU-9",
        "item_title": "Rolex Submariner",
        "quantity": 1,
        "amount": "68500.00",
        "paid_at": (now - timedelta(hours=1)).isoformat(),
        "auto_confirm_at": (now + timedelta(days=10)).isoformat(),
    }
    data.update(overrides)
    return data


def replay_run(report=None, **fields):
    """A kept replay of the risk rules (``ReplayRun``), as the command writes
    one; by default over the last week, with nothing found."""
    from risks.choices import Rule
    from risks.models import ReplayRun

    end = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    nothing = {
        "rules": [
            {
                "rule": str(rule),
                "opened": 0,
                "false_alarms": 0,
                "caught_first": 0,
                "median_lead_hours": None,
                "least_lead_hours": None,
            }
            for rule in Rule
        ],
        "losses": [],
        "headline": {"losses": 0, "caught": 0, "share_24h": None, "share_24h_without_forecast": None},
    }
    values = {
        "period_start": end - timedelta(days=7),
        "period_end": end,
        "thresholds": {},
        "orders": 0,
        "hours": 168,
        "seconds": 1.5,
        "report": report or nothing,
    }
    values.update(fields)
    return ReplayRun.objects.create(**values)


def walk(order, steps, base):
    """Take ``order`` through ``steps`` ((action, hours after ``base``,
    parameters)) at those past moments, as its merchant ships, its provider
    works, the carrier scans (``params["carrier"]``, SF by default) and the
    platform confirms; returns the order as it then is."""
    provider = workflow.Actor.of_organisation(order.provider, EventSource.WEB)
    merchant = workflow.Actor.of_organisation(order.merchant, EventSource.WEB)
    for action, hours, params in steps:
        when = base + timedelta(hours=hours)
        if action in (Action.CARRIER_PICKUP, Action.CARRIER_DELIVERY):
            status = ScanStatus.PICKED_UP if action == Action.CARRIER_PICKUP else ScanStatus.DELIVERED
            by = params.get("carrier", "SF")
            carrier.record_scan(carrier=by, tracking_no=order.waybill_no, status=status, occurred_at=when)
            order.refresh_from_db()
        elif action == Action.SHIP:
            order = workflow.perform(
                order, action, merchant, occurred_at=when, carrier="SF", tracking_no=f"SF{order.pk:08d}"
            )
        elif action == Action.CONFIRM:
            order = workflow.perform(order, action, platform_actor(), occurred_at=when)
        else:
            order = workflow.perform(order, action, provider, occurred_at=when, **params)
    return order
