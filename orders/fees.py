"""The fee ledger as a split group sees it (SPEC §2.3)."""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Exists, OuterRef, Q

from orders.choices import FeeKind, SplitChoice
from orders.inputs import MAX_SCAN_AHEAD
from orders.models import FeeCharge, SplitGroup


@dataclass(frozen=True)
class GroupFees:
    appraisal_charged: Decimal
    logistics_charged: Decimal
    appraisal_expected: Decimal
    logistics_expected: Decimal

    @property
    def charged(self) -> Decimal:
        return self.appraisal_charged + self.logistics_charged

    @property
    def expected(self) -> Decimal:
        return self.appraisal_expected + self.logistics_expected

    @property
    def overcharged(self) -> Decimal:
        return self.charged - self.expected


def group_fees(trade_no: str, sku: str, orders=None) -> GroupFees:
    """What the merchant was charged for a split group, and what handling it
    correctly would have charged for the same events: one appraisal fee for
    the item, and one logistics fee, or one per picked-up waybill when the
    merchant chose to keep the orders (choice B).

    ``orders``, when given, is the viewer's scope (``Order.objects.visible_to``):
    only charges on those orders count, so a group that spans two merchants
    (created before a trade was tied to one merchant) never shows one
    merchant's fees to the other.
    """
    charges = FeeCharge.objects.filter(order__trade_no=trade_no, order__sku=sku)
    if orders is not None:
        charges = charges.filter(order__in=orders)
    charges = list(charges.order_by("charged_at", "pk"))
    appraisal = [c for c in charges if c.kind == FeeKind.APPRAISAL]
    logistics = [c for c in charges if c.kind == FeeKind.LOGISTICS]
    choice = SplitGroup.objects.filter(trade_no=trade_no, sku=sku).values_list("choice", flat=True).first()
    expected_logistics = logistics if choice == SplitChoice.KEEP_NOT_REQUIRED else logistics[:1]
    return GroupFees(
        appraisal_charged=sum((c.amount for c in appraisal), Decimal("0.00")),
        logistics_charged=sum((c.amount for c in logistics), Decimal("0.00")),
        appraisal_expected=sum((c.amount for c in appraisal[:1]), Decimal("0.00")),
        logistics_expected=sum((c.amount for c in expected_logistics), Decimal("0.00")),
    )


def extra_charges(orders=None, since=None):
    """The fee charges beyond what correct handling would have charged, as
    ``group_fees`` counts them, set-wise: every appraisal fee of a split group
    after its first, and every logistics fee after its first unless the
    merchant chose to keep the orders (choice B). "First" is by ``charged_at``,
    then by id, as ``group_fees`` orders them.

    ``orders``, when given, is the viewer's scope (``Order.objects.visible_to``):
    only charges on those orders count, before and after, as in ``group_fees``.
    ``since``, when given, keeps the charges made since then.
    """
    charges = FeeCharge.objects.all() if orders is None else FeeCharge.objects.filter(order__in=orders)
    # Only an order of a split group (a ``SplitGroup`` row) can be charged
    # twice. A group is closed only once all its orders are finished, after
    # its last charge (a carrier may date a pickup up to MAX_SCAN_AHEAD
    # ahead), so a charge since ``since`` is in a group still open or closed
    # since: the database starts from those few groups, not from every charge.
    groups = SplitGroup.objects.filter(trade_no=OuterRef("order__trade_no"), sku=OuterRef("order__sku"))
    if since is not None:
        groups = groups.filter(Q(closed_at__isnull=True) | Q(closed_at__gte=since - MAX_SCAN_AHEAD))
    earlier = charges.filter(
        Q(charged_at__lt=OuterRef("charged_at")) | Q(charged_at=OuterRef("charged_at"), pk__lt=OuterRef("pk")),
        kind=OuterRef("kind"),
        order__trade_no=OuterRef("order__trade_no"),
        order__sku=OuterRef("order__sku"),
    )
    kept = SplitGroup.objects.filter(
        trade_no=OuterRef("order__trade_no"), sku=OuterRef("order__sku"), choice=SplitChoice.KEEP_NOT_REQUIRED
    )
    extra = charges.filter(Exists(groups), Exists(earlier)).exclude(Q(kind=FeeKind.LOGISTICS) & Exists(kept))
    return extra if since is None else extra.filter(charged_at__gte=since)
