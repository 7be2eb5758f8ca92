"""Each action as a form on the order page: success moves the order and
writes its event; a refusal shows its reason and changes nothing."""

import pytest
from django.urls import reverse

from orders import workflow
from orders.choices import Action, AppraisalResult, OrderState
from orders.models import Order, OrderEvent
from tests.factories import advance, new_order

S = OrderState

# action slug, persona, starting state, form data, state after
CASES = [
    ("ship", "merchant", S.AWAITING_SHIPMENT, {"carrier": "SF", "tracking_no": "SF1000200030"}, S.INBOUND),
    ("verify-pending", "provider", S.ARRIVED, {"outcome": "still_in_transit", "note": "asked"}, S.ARRIVED),
    ("verify-pending", "provider", S.ARRIVED, {"outcome": "signed"}, S.SIGNED_IN),
    ("sign-in", "provider", S.ARRIVED, {}, S.SIGNED_IN),
    ("appraise", "provider", S.SIGNED_IN, {"result": "pass"}, S.APPRAISED),
    ("inspect", "provider", S.APPRAISED, {}, S.INSPECTED),
    ("pack", "provider", S.INSPECTED, {}, S.PACKED),
    ("print-waybill", "provider", S.PACKED, {}, S.WAYBILL_PRINTED),
    ("report-blocked", "provider", S.INSPECTED, {"stage": "packing", "reason": "station broken"}, S.INSPECTED),
    ("sign-in-on-behalf", "operator", S.ARRIVED, {"note": "ERP refuses"}, S.SIGNED_IN),
    ("extend-deadline", "operator", S.OUTBOUND, {"hours": "48"}, S.OUTBOUND),
    ("confirm", "operator", S.DELIVERED, {}, S.COMPLETED),
    ("refund", "operator", S.PACKED, {"reason": "buyer asked"}, S.REFUNDED),
]


def post(client, order, slug, data, version=None):
    payload = {f"{slug}-{k}": v for k, v in data.items()}
    payload[f"{slug}-version"] = version if version is not None else order.version
    return client.post(reverse("orders:action", args=[order.order_no, slug]), payload)


@pytest.mark.parametrize(("slug", "persona", "start", "data", "after"), CASES, ids=[f"{c[0]}-{c[4]}" for c in CASES])
def test_an_action_form_moves_the_order_and_writes_its_event(
    client, personas, merchant_org, provider_org, slug, persona, start, data, after
):
    order = advance(new_order(merchant_org, provider_org), start)
    client.force_login(personas[persona])
    detail = client.get(reverse("orders:detail", args=[order.order_no])).content.decode()
    assert f'id="action-{slug}"' in detail, "the form is offered"

    response = post(client, order, slug, data)

    assert response.status_code == 302, response.content.decode()[:2000]
    moved = Order.objects.get(pk=order.pk)
    assert moved.state == after
    event = OrderEvent.objects.get(order=order, seq=moved.version)
    assert event.actor_user == personas[persona]
    assert event.source == "web"
    assert event.action == slug.replace("-", "_")


def test_a_second_pass_in_a_split_group_is_shown_on_the_form(client, provider, merchant_org, provider_org):
    first = advance(new_order(merchant_org, provider_org, trade_no="T-F", sku="S"), S.APPRAISED)
    second = advance(new_order(merchant_org, provider_org, trade_no="T-F", sku="S"), S.SIGNED_IN)
    client.force_login(provider)

    response = post(client, second, "appraise", {"result": "pass"})

    assert response.status_code == 409
    assert first.order_no in response.content.decode()
    assert "No appraisal needed" in response.content.decode()
    second.refresh_from_db()
    assert second.state == S.SIGNED_IN and second.version == OrderEvent.objects.filter(order=second).count()


def test_a_blocked_order_offers_no_waybill_and_refuses_one(client, provider, merchant_org, provider_org):
    packed = advance(new_order(merchant_org, provider_org), S.PACKED)
    blocked = workflow.perform(
        packed, Action.REPORT_BLOCKED, workflow.Actor.of_organisation(provider_org), stage="packing", reason="x"
    )
    client.force_login(provider)
    page = client.get(reverse("orders:detail", args=[packed.order_no])).content.decode()
    assert 'id="action-print-waybill"' not in page
    assert "Never ship this order offline" in page

    response = post(client, blocked, "print-waybill", {})

    assert response.status_code == 409
    assert "unblock" in response.content.decode()
    blocked.refresh_from_db()
    assert blocked.state == S.PACKED and not blocked.waybill_no


def test_the_blocked_form_says_offline_shipping_is_forbidden(client, provider, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), S.SIGNED_IN)
    client.force_login(provider)
    page = client.get(reverse("orders:detail", args=[order.order_no])).content.decode()
    assert "Shipping it offline is forbidden" in page


def test_a_stale_form_is_a_conflict_and_changes_nothing(client, provider, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    seen = order.version
    workflow.perform(order, Action.SIGN_IN, workflow.Actor.of_organisation(provider_org))
    client.force_login(provider)

    response = post(client, order, "sign-in", {}, version=seen)

    assert response.status_code == 409
    assert "Reload" in response.content.decode()
    assert OrderEvent.objects.filter(order=order, action=Action.SIGN_IN).count() == 1


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"carrier": "SF", "tracking_no": "has spaces in it"}, "tracking_no"),
        ({"carrier": "", "tracking_no": "SF1"}, ""),
    ],
)
def test_bad_input_is_shown_on_its_field_and_changes_nothing(client, merchant, order, data, field):
    client.force_login(merchant)
    response = post(client, order, "ship", data)
    assert response.status_code == 400
    form = dict(response.context["forms"])["ship"]
    assert form.errors
    order.refresh_from_db()
    assert order.state == S.AWAITING_SHIPMENT and order.version == 1


def test_an_action_of_another_role_is_not_there(client, merchant, provider, order):
    client.force_login(provider)
    assert post(client, order, "ship", {"carrier": "SF", "tracking_no": "SF12345678"}).status_code == 404
    client.force_login(merchant)
    assert post(client, order, "refund", {"reason": "x"}).status_code == 404
    assert post(client, order, "teleport", {}).status_code == 404
    order.refresh_from_db()
    assert order.version == 1


def test_the_page_offers_nothing_on_a_finished_order(client, operator, merchant_org, provider_org):
    done = advance(new_order(merchant_org, provider_org), S.COMPLETED, result=AppraisalResult.PASS)
    client.force_login(operator)
    page = client.get(reverse("orders:detail", args=[done.order_no])).content.decode()
    assert 'id="action-' not in page


def test_providers_see_the_buyer_masked_and_merchants_in_full(client, merchant, provider, merchant_org, provider_org):
    order = new_order(
        merchant_org,
        provider_org,
        buyer_name="王小明",
        buyer_phone="13812345678",
        buyer_address="上海市浦东新区世纪大道100号",
    )
    client.force_login(provider)
    page = client.get(reverse("orders:detail", args=[order.order_no])).content.decode()
    assert "13812345678" not in page and "138****5678" in page and "王**" in page
    assert "世纪大道" not in page
    client.force_login(merchant)
    page = client.get(reverse("orders:detail", args=[order.order_no])).content.decode()
    assert "13812345678" in page and "王小明" in page


def test_bulk_sign_in_signs_the_ticked_orders_of_the_provider_only(
    client, provider, merchant_org, provider_org, provider2_org
):
    ticked = [advance(new_order(merchant_org, provider_org), S.ARRIVED) for _ in range(2)]
    unticked = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    foreign = advance(new_order(merchant_org, provider2_org), S.ARRIVED)
    client.force_login(provider)

    response = client.post(
        reverse("orders:bulk", args=["pending-sign-in"]),
        {"select": [o.order_no for o in [*ticked, foreign]]},
        follow=True,
    )

    page = response.content.decode()
    assert "Sign in: 2 orders done." in page
    # The other provider's order reads as if it did not exist.
    assert f"No order of yours has the number {foreign.order_no}." not in page
    assert foreign.order_no not in page
    states = dict(Order.objects.values_list("order_no", "state"))
    assert [states[o.order_no] for o in ticked] == [S.SIGNED_IN, S.SIGNED_IN]
    assert states[unticked.order_no] == S.ARRIVED and states[foreign.order_no] == S.ARRIVED


def test_bulk_sign_in_of_all_matching_follows_the_filter(client, provider, merchant_org, merchant2_org, provider_org):
    wanted = [advance(new_order(merchant_org, provider_org), S.ARRIVED) for _ in range(3)]
    other = advance(new_order(merchant2_org, provider_org), S.ARRIVED)
    client.force_login(provider)

    client.post(
        reverse("orders:bulk", args=["pending-sign-in"]),
        {"all_matching": "1", "query": f"merchant={merchant_org.code}"},
    )

    states = dict(Order.objects.values_list("order_no", "state"))
    assert all(states[o.order_no] == S.SIGNED_IN for o in wanted)
    assert states[other.order_no] == S.ARRIVED
    for order in wanted:
        assert order.events.get(action=Action.SIGN_IN).actor_user == provider
