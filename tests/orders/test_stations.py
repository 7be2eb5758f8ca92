"""Scan stations and bulk steps: the worklist's step applied to scanned or ticked orders."""

import re

import pytest
from django.urls import reverse

from orders.choices import Action, AppraisalResult, BlockedStage
from orders.choices import OrderState as S
from orders.models import Order
from orders.workflow import Actor, perform
from portal.choices import EventSource
from tests.factories import advance, new_order

pytestmark = pytest.mark.django_db


def station(client, slug, code, **extra):
    """One scan as the station's script sends it; the answer is the result lines."""
    response = client.post(
        reverse("orders:station", args=[slug]),
        {"code": code, **extra},
        HTTP_X_REQUESTED_WITH="scan-station",
    )
    assert response.status_code == 200
    return response.content.decode()


def state_of(order):
    return Order.objects.get(pk=order.pk).state


def test_a_scanned_tracking_number_signs_the_parcel_in_in_any_case_and_with_spaces(client, provider, order):
    parcel = advance(order, S.ARRIVED)
    client.force_login(provider)

    html = station(client, "pending-sign-in", f"  {parcel.inbound_tracking_no.lower()}\t")

    assert 'data-outcome="done"' in html and "Signed in." in html
    assert state_of(parcel) == S.SIGNED_IN
    event = parcel.events.get(action=Action.SIGN_IN)
    assert event.actor_user == provider and event.source == EventSource.WEB


def test_a_repeated_scan_is_reported_as_done_before_and_applies_once(client, provider, order):
    parcel = advance(order, S.ARRIVED)
    client.force_login(provider)
    station(client, "pending-sign-in", parcel.inbound_tracking_no)

    html = station(client, "pending-sign-in", parcel.inbound_tracking_no)

    assert 'data-outcome="already"' in html and "Already signed in" in html
    assert parcel.events.filter(action=Action.SIGN_IN).count() == 1


def test_one_parcel_holding_a_split_group_signs_in_every_order_in_it(client, provider, merchant_org, provider_org):
    first = advance(new_order(merchant_org, provider_org, trade_no="T-SPLIT"), S.INBOUND)
    second = new_order(merchant_org, provider_org, trade_no="T-SPLIT")
    merchant = Actor.of_organisation(merchant_org, EventSource.API)
    perform(second, Action.SHIP, merchant, carrier="SF", tracking_no=first.inbound_tracking_no)
    client.force_login(provider)

    html = station(client, "pending-sign-in", first.inbound_tracking_no)

    assert html.count('data-outcome="done"') == 2
    assert state_of(first) == S.SIGNED_IN and state_of(second) == S.SIGNED_IN


def test_another_providers_parcel_reads_as_not_found_and_is_not_touched(client, provider, merchant_org, provider2_org):
    foreign = advance(new_order(merchant_org, provider2_org), S.ARRIVED)
    client.force_login(provider)

    html = station(client, "pending-sign-in", foreign.inbound_tracking_no)

    assert 'data-outcome="not_found"' in html
    assert foreign.order_no not in html
    assert state_of(foreign) == S.ARRIVED


def test_a_blocked_order_is_refused_with_the_reason(client, provider, order):
    packed = advance(order, S.INSPECTED)
    provider_actor = Actor.of_organisation(packed.provider, EventSource.API)
    perform(packed, Action.REPORT_BLOCKED, provider_actor, stage=BlockedStage.PACKING, reason="ERP refuses the box")
    client.force_login(provider)

    html = station(client, "to-pack", packed.order_no)

    assert 'data-outcome="blocked"' in html and "ERP refuses the box" in html and "offline" in html
    assert state_of(packed) == S.INSPECTED


def test_an_order_at_another_stage_is_not_moved(client, provider, order):
    signed = advance(order, S.SIGNED_IN)
    client.force_login(provider)

    html = station(client, "to-pack", signed.order_no)

    assert 'data-outcome="not_ready"' in html and "Signed in by the provider" in html
    assert state_of(signed) == S.SIGNED_IN


def test_the_appraisal_station_needs_a_result_and_remembers_the_last_one(client, provider, order):
    signed = advance(order, S.SIGNED_IN)
    client.force_login(provider)

    assert 'data-outcome="needs_choice"' in station(client, "to-appraise", signed.order_no)
    assert state_of(signed) == S.SIGNED_IN

    html = station(client, "to-appraise", signed.order_no, result=AppraisalResult.PASS)

    assert "Appraised: Pass." in html
    page = client.get(reverse("orders:station", args=["to-appraise"])).content.decode()
    assert re.search(r'<input[^>]*value="pass"[^>]*checked', page)
    assert not re.search(r'<input[^>]*value="fail"[^>]*checked', page)


def test_a_second_pass_in_a_split_group_is_refused_at_the_station_with_the_reason(
    client, provider, merchant_org, provider_org
):
    first = advance(new_order(merchant_org, provider_org, trade_no="T-2"), S.SIGNED_IN)
    second = advance(new_order(merchant_org, provider_org, trade_no="T-2"), S.SIGNED_IN)
    client.force_login(provider)
    station(client, "to-appraise", first.order_no, result=AppraisalResult.PASS)

    html = station(client, "to-appraise", second.order_no, result=AppraisalResult.PASS)

    assert 'data-outcome="refused"' in html and "No appraisal needed" in html
    assert state_of(second) == S.SIGNED_IN


def test_a_trade_number_naming_two_orders_at_the_stage_asks_for_the_order_number(
    client, provider, merchant_org, provider_org
):
    a = advance(new_order(merchant_org, provider_org, trade_no="T-3"), S.INSPECTED)
    b = advance(new_order(merchant_org, provider_org, trade_no="T-3", sku="SKU-2"), S.INSPECTED)
    client.force_login(provider)

    html = station(client, "to-pack", "t-3")

    assert 'data-outcome="ambiguous"' in html
    assert state_of(a) == S.INSPECTED and state_of(b) == S.INSPECTED


def test_printing_at_the_ship_station_answers_with_the_waybill_and_its_label(client, provider, order):
    packed = advance(order, S.PACKED)
    client.force_login(provider)

    html = station(client, "to-ship", packed.order_no)

    packed.refresh_from_db()
    assert packed.state == S.WAYBILL_PRINTED and packed.waybill_no
    assert packed.waybill_no in html
    assert f"{reverse('orders:labels')}?select={packed.order_no}" in html


def test_without_the_script_the_station_answers_with_the_whole_page(client, provider, order):
    parcel = advance(order, S.ARRIVED)
    client.force_login(provider)

    response = client.post(reverse("orders:station", args=["pending-sign-in"]), {"code": parcel.order_no})

    html = response.content.decode()
    assert response.status_code == 200 and 'id="scan-form"' in html and "Signed in." in html


def test_a_station_is_for_provider_staff_of_a_stage_with_a_step(client, provider, merchant, operator):
    client.force_login(provider)
    assert client.get(reverse("orders:station", args=["awaiting-pickup"])).status_code == 404
    for person in (merchant, operator):
        client.force_login(person)
        assert client.get(reverse("orders:station", args=["pending-sign-in"])).status_code == 404


def test_bulk_pack_applies_each_ticked_order_on_its_own(client, provider, merchant_org, provider_org):
    ready = [advance(new_order(merchant_org, provider_org), S.INSPECTED) for _ in range(2)]
    blocked = advance(new_order(merchant_org, provider_org), S.INSPECTED)
    perform(
        blocked,
        Action.REPORT_BLOCKED,
        Actor.of_organisation(provider_org, EventSource.API),
        stage=BlockedStage.PACKING,
        reason="no box",
    )
    client.force_login(provider)

    response = client.post(
        reverse("orders:bulk", args=["to-pack"]), {"select": [o.order_no for o in [*ready, blocked]]}, follow=True
    )

    page = response.content.decode()
    assert "Pack: 2 orders done." in page
    assert 'id="bulk-results"' in page and page.count('data-outcome="done"') == 2 and "no box" in page
    assert [state_of(o) for o in ready] == [S.PACKED, S.PACKED]
    assert state_of(blocked) == S.INSPECTED


def test_bulk_printing_leads_to_the_labels_of_the_printed_orders(client, provider, merchant_org, provider_org):
    packed = [advance(new_order(merchant_org, provider_org), S.PACKED) for _ in range(2)]
    client.force_login(provider)

    response = client.post(reverse("orders:bulk", args=["to-ship"]), {"select": [o.order_no for o in packed]})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("orders:labels"))
    assert all(f"select={o.order_no}" in response["Location"] for o in packed)
    assert all(state_of(o) == S.WAYBILL_PRINTED for o in packed)


def test_bulk_inspect_of_an_order_a_colleague_inspected_says_so(client, provider, order):
    appraised = advance(order, S.APPRAISED)
    client.force_login(provider)
    client.post(reverse("orders:bulk", args=["to-inspect"]), {"select": [appraised.order_no]})

    page = client.post(
        reverse("orders:bulk", args=["to-inspect"]), {"select": [appraised.order_no]}, follow=True
    ).content.decode()

    assert "Already inspected" in page
    assert appraised.events.filter(action=Action.INSPECT).count() == 1
