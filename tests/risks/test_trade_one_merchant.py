"""A trade belongs to one merchant: creating an order of a
trade for another merchant is refused, and a split group that spans two
merchants (made before this rule) shows each merchant only their own fees and
lets neither choose for the other."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from orders import errors
from orders.choices import FeeKind
from orders.choices import OrderState as S
from orders.fees import group_fees
from orders.models import FeeCharge, Order, SplitGroup
from risks.models import RiskCase
from risks.sweep import run_sweep
from tests.factories import advance, new_order


def creation(order_no, trade_no, merchant, provider, sku="SKU-1"):
    now = timezone.now()
    return {
        "order_no": order_no,
        "trade_no": trade_no,
        "merchant": merchant.code,
        "provider": provider.code,
        "sku": sku,
        "item_title": "Sneakers",
        "quantity": 1,
        "amount": "100.00",
        "paid_at": (now - timedelta(hours=1)).isoformat(),
        "auto_confirm_at": (now + timedelta(days=10)).isoformat(),
    }


def test_an_order_of_a_trade_of_another_merchant_is_refused(merchant_org, merchant2_org, provider_org):
    new_order(merchant_org, provider_org, trade_no="T-ONE", sku="SKU-A")

    with pytest.raises(errors.TradeOfOtherMerchant):
        new_order(merchant2_org, provider_org, trade_no="T-ONE", sku="SKU-B")

    assert list(Order.objects.filter(trade_no="T-ONE").values_list("merchant", flat=True)) == [merchant_org.pk]


def test_the_same_merchant_may_add_orders_to_its_trade(merchant_org, provider_org, provider2_org):
    new_order(merchant_org, provider_org, trade_no="T-OWN")
    new_order(merchant_org, provider2_org, trade_no="T-OWN", sku="SKU-2")

    assert Order.objects.filter(trade_no="T-OWN").count() == 2


def test_the_api_refuses_the_trade_of_another_merchant_with_a_code(
    api, keys, merchant_org, merchant2_org, provider_org
):
    client = api.as_key(keys["platform"])
    assert (
        client.post("/api/v1/orders/", creation("O-T1", "T-API", merchant_org, provider_org), format="json").status_code
        == 201
    )

    response = client.post("/api/v1/orders/", creation("O-T2", "T-API", merchant2_org, provider_org), format="json")

    assert response.status_code == 409
    assert response.json()["code"] == "trade_other_merchant"
    assert "T-API" in response.json()["detail"]
    assert not Order.objects.filter(order_no="O-T2").exists()


@pytest.fixture
def mixed_group(merchant_org, merchant2_org, provider_org, platform):
    """A split group of one trade and SKU whose orders belong to two merchants,
    as data from before the rule could hold it."""
    first = advance(new_order(merchant_org, provider_org, trade_no="T-MIX", sku="SKU-M"), S.SIGNED_IN)
    second = advance(new_order(merchant_org, provider_org, trade_no="T-MIX", sku="SKU-M"), S.SIGNED_IN)
    Order.objects.filter(pk=second.pk).update(merchant=merchant2_org)
    now = timezone.now()
    FeeCharge.objects.create(order=first, kind=FeeKind.APPRAISAL, amount=Decimal("30.00"), charged_at=now)
    FeeCharge.objects.create(order=second, kind=FeeKind.APPRAISAL, amount=Decimal("45.00"), charged_at=now)
    run_sweep()
    return first, Order.objects.get(pk=second.pk)


def test_fees_count_only_the_viewers_own_orders(mixed_group, merchant, merchant2, operator):
    assert group_fees("T-MIX", "SKU-M", orders=Order.objects.visible_to(merchant)).appraisal_charged == Decimal("30.00")
    assert group_fees("T-MIX", "SKU-M", orders=Order.objects.visible_to(merchant2)).appraisal_charged == Decimal(
        "45.00"
    )
    assert group_fees("T-MIX", "SKU-M", orders=Order.objects.visible_to(operator)).appraisal_charged == Decimal("75.00")


def split_case():
    return RiskCase.objects.filter(subject="group:T-MIX/SKU-M").first()


def test_neither_merchant_of_a_mixed_group_may_choose_on_the_web(client, mixed_group, merchant, merchant2):
    case = split_case()
    assert case is not None
    for person, own_fee in ((merchant, Decimal("30.00")), (merchant2, Decimal("45.00"))):
        client.force_login(person)
        page = client.get(reverse("risks:case", args=[case.pk]))
        assert page.status_code == 200
        assert page.context["may_choose"] is False
        assert page.context["fees"].appraisal_charged == own_fee
        response = client.post(reverse("risks:case-split-choice", args=[case.pk]), {"choice": "B"})
        assert response.status_code == 400
    assert SplitGroup.objects.get(trade_no="T-MIX", sku="SKU-M").choice == ""


def test_neither_merchant_of_a_mixed_group_may_choose_through_the_api(api, keys, mixed_group):
    for persona in ("merchant", "merchant2"):
        response = api.as_key(keys[persona]).post(
            "/api/v1/split-groups/T-MIX/SKU-M/choose/", {"choice": "B"}, format="json"
        )
        assert response.status_code == 409
        assert response.json()["code"] == "trade_other_merchant"
    assert SplitGroup.objects.get(trade_no="T-MIX", sku="SKU-M").choice == ""


def test_the_merchant_of_a_whole_group_still_chooses(api, keys, merchant_org, provider_org, platform):
    for _n in range(2):
        advance(new_order(merchant_org, provider_org, trade_no="T-WHOLE", sku="SKU-W"), S.SIGNED_IN)

    response = api.as_key(keys["merchant"]).post(
        "/api/v1/split-groups/T-WHOLE/SKU-W/choose/", {"choice": "B"}, format="json"
    )

    assert response.status_code == 200
    assert SplitGroup.objects.get(trade_no="T-WHOLE", sku="SKU-W").choice == "B"
