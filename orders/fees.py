"""The fee ledger as a split group sees it (SPEC §2.3)."""

from dataclasses import dataclass
from decimal import Decimal

from orders.choices import FeeKind, SplitChoice
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
