"""SPEC §2.3: the fee ledger and what a correct handling would have charged."""

from decimal import Decimal

from orders import expiry
from orders.choices import Action, AppraisalResult, FeeKind, OrderState, SplitChoice
from orders.fees import group_fees
from orders.models import FeeCharge, SplitGroup
from tests.factories import advance, new_order

S = OrderState


def test_a_completed_appraised_order_pays_one_appraisal_and_one_logistics_fee(order):
    done = advance(order, S.COMPLETED)
    fees = {f.kind: f for f in FeeCharge.objects.filter(order=done)}
    assert set(fees) == {FeeKind.APPRAISAL, FeeKind.LOGISTICS}
    assert fees[FeeKind.APPRAISAL].amount == Decimal("30.00")
    assert fees[FeeKind.LOGISTICS].amount == Decimal("12.00")
    assert fees[FeeKind.LOGISTICS].waybill_no == done.waybill_no


def test_a_returned_failed_order_pays_the_appraisal_fee(order):
    done = advance(order, S.RETURNED)
    assert set(FeeCharge.objects.filter(order=done).values_list("kind", flat=True)) == {
        FeeKind.APPRAISAL,
        FeeKind.LOGISTICS,
    }


def test_no_appraisal_needed_pays_no_appraisal_fee(order, platform):
    done = advance(order, S.COMPLETED, result=AppraisalResult.NOT_REQUIRED)
    assert list(FeeCharge.objects.filter(order=done).values_list("kind", flat=True)) == [FeeKind.LOGISTICS]


def test_refunded_before_pickup_pays_nothing(order):
    packed = advance(order, S.PACKED)
    advance(packed, S.REFUNDED)
    assert not FeeCharge.objects.filter(order=order).exists()


def test_a_fee_is_the_providers_fee_when_it_was_charged(order, provider_org):
    printed = advance(order, S.WAYBILL_PRINTED)
    provider_org.logistics_fee = Decimal("20.00")
    provider_org.save()
    picked = advance(printed, S.OUTBOUND)
    assert FeeCharge.objects.get(order=picked).amount == Decimal("20.00")


def _split_group_of_two_shipped(merchant_org, provider_org):
    first = new_order(merchant_org, provider_org, trade_no="T-FEES", sku="SKU-F")
    second = new_order(merchant_org, provider_org, trade_no="T-FEES", sku="SKU-F")
    advance(first, S.COMPLETED)
    advance(second, S.COMPLETED, result=AppraisalResult.NOT_REQUIRED)


def test_group_fees_show_the_extra_logistics_fee_without_choice_b(merchant_org, provider_org, platform):
    _split_group_of_two_shipped(merchant_org, provider_org)
    fees = group_fees("T-FEES", "SKU-F")
    assert fees.appraisal_charged == fees.appraisal_expected == Decimal("30.00")
    assert fees.logistics_charged == Decimal("24.00")
    assert fees.logistics_expected == Decimal("12.00")
    assert fees.overcharged == Decimal("12.00")


def test_group_fees_with_choice_b_expect_every_logistics_fee(merchant_org, provider_org, platform):
    _split_group_of_two_shipped(merchant_org, provider_org)
    SplitGroup.objects.filter(trade_no="T-FEES", sku="SKU-F").update(choice=SplitChoice.KEEP_NOT_REQUIRED)
    fees = group_fees("T-FEES", "SKU-F")
    assert fees.logistics_expected == fees.logistics_charged == Decimal("24.00")
    assert fees.overcharged == Decimal("0.00")


def test_an_order_pays_a_kind_of_fee_at_most_once(order):
    done = advance(order, S.COMPLETED)
    assert FeeCharge.objects.filter(order=done).count() == 2
    assert done.events.filter(action=Action.CARRIER_PICKUP).count() == 1
    assert expiry.apply_deadlines() == {"completed": 0, "auto_refunded": 0}
    assert FeeCharge.objects.filter(order=done).count() == 2
