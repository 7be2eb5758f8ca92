"""SPEC §6.2 orders: create, list, detail, every action, worklists; refusals and scope."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from orders.api.views import OrderViewSet
from orders.choices import Action, FeeKind, OrderState
from orders.models import FeeCharge, Order, OrderEvent
from tests.factories import advance, new_order, order_body

S = OrderState
NOW = timezone.now().replace(microsecond=0)


def body(**overrides):
    return order_body(NOW, **overrides)


def act(api, order_no, action, data=None, **headers):
    return api.post(f"/api/v1/orders/{order_no}/{action}/", data or {}, format="json", **headers)


# --- create -----------------------------------------------------------------


def test_the_platform_creates_an_order_and_a_repeat_changes_nothing(api, keys):
    api.as_key(keys["platform"])
    first = api.post("/api/v1/orders/", body(), format="json")
    assert first.status_code == 201, first.json()
    assert first.json()["state"] == "awaiting_shipment" and first.json()["merchant"] == "M-1"
    assert first.json()["paid_at"].endswith("+08:00")

    again = api.post("/api/v1/orders/", body(), format="json")
    assert again.status_code == 200
    assert Order.objects.get(order_no="API-1").version == 1

    different = api.post("/api/v1/orders/", body(amount="1.00"), format="json")
    assert different.status_code == 409 and different.json()["code"] == "order_exists"


def test_a_repeat_after_an_extension_is_still_the_same_order(api, keys):
    api.as_key(keys["platform"])
    api.post("/api/v1/orders/", body(), format="json")
    act(api, "API-1", "extend-deadline", {"hours": 24})
    assert api.post("/api/v1/orders/", body(), format="json").status_code == 200


@pytest.mark.parametrize("persona", ["merchant", "provider"])
def test_only_the_platform_creates_orders(api, keys, persona):
    response = api.as_key(keys[persona]).post("/api/v1/orders/", body(), format="json")
    assert response.status_code == 403 and response.json()["code"] == "not_allowed"
    assert not Order.objects.exists()


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"merchant": "P-1"}, "merchant"),
        ({"provider": "NOPE"}, "provider"),
        ({"quantity": 0}, "quantity"),
        ({"quantity": "many"}, "quantity"),
        ({"amount": "1e400"}, "amount"),
        ({"amount": "-5"}, "amount"),
        ({"order_no": "A\u0000B"}, "order_no"),
        ({"order_no": "x" * 65}, "order_no"),
        ({"paid_at": "yesterday"}, "paid_at"),
        ({"paid_at": "2026-11-29T10:00:00"}, "paid_at"),
        ({"paid_at": "9999-12-31T23:59:59-21:00"}, "paid_at"),
        ({"auto_confirm_at": "1970-01-01T00:00:00Z"}, "auto_confirm_at"),
        ({"colour": "red"}, "colour"),
        ({"merchant": 7}, "merchant"),
        ({"merchant": ["M-1"]}, "merchant"),
        ({"provider": "P-\x001"}, "provider"),
    ],
)
def test_bad_creation_input_is_a_400_naming_the_field(api, keys, overrides, field):
    response = api.as_key(keys["platform"]).post("/api/v1/orders/", body(**overrides), format="json")
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid" and field in response.json()["fields"]
    assert not Order.objects.exists()


def test_the_deadline_must_follow_the_payment(api, keys):
    now = timezone.now()
    data = body(paid_at=now.isoformat(), auto_confirm_at=(now - timedelta(hours=1)).isoformat())
    response = api.as_key(keys["platform"]).post("/api/v1/orders/", data, format="json")
    assert response.status_code == 400 and "auto_confirm_at" in response.json()["fields"]


@pytest.mark.parametrize(
    ("raw", "content_type"),
    [
        (b'{"order_no": ', "application/json"),
        (b"[1, 2, 3]", "application/json"),
        (b'"just a string"', "application/json"),
        (b"\xff\xfe\x00", "application/json"),
        (b"order_no=1", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_bodies_are_4xx_never_5xx(api, keys, raw, content_type):
    response = api.as_key(keys["platform"]).generic("POST", "/api/v1/orders/", raw, content_type=content_type)
    assert 400 <= response.status_code < 500
    assert "code" in response.json()


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/orders/A%00B/",
        "/api/v1/orders/?merchant=M%00",
        "/api/v1/cases/?order=O%00",
        "/api/v1/split-groups/T%00/S/",
        "/orders/A%00B/",
        "/search/?q=A%00",
    ],
)
def test_a_nul_in_the_address_or_query_is_a_400(api, keys, client, merchant, url):
    """PostgreSQL cannot hold a NUL in text: refused at the door, not by a failing lookup."""
    if url.startswith("/api/"):
        response = api.as_key(keys["merchant"]).get(url)
        assert response.status_code == 400 and response.json()["code"] == "malformed_request"
    else:
        client.force_login(merchant)
        assert client.get(url).status_code == 400
    client.cookies["sessionid"] = "abc\x00def"
    assert client.get("/").status_code == 400


# --- authentication and scope -------------------------------------------------------


def test_no_key_or_a_bad_or_revoked_key_is_401(api, keys, platform):
    from portal import apikeys
    from portal.models import ApiKey

    assert api.get("/api/v1/orders/").status_code == 401
    assert api.as_key("apk_nothing_here").get("/api/v1/orders/").status_code == 401
    key = ApiKey.objects.get(name="platform key")
    apikeys.revoke(key)
    response = api.as_key(keys["platform"]).get("/api/v1/orders/")
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"


def test_keys_are_stored_hashed_and_record_their_last_use(api, keys):
    from portal.models import ApiKey

    key = ApiKey.objects.get(name="merchant key")
    assert keys["merchant"] not in {key.key_hash, key.prefix} and key.last_used_at is None
    api.as_key(keys["merchant"]).get("/api/v1/orders/")
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_the_web_session_works_for_the_api(client, merchant, order):
    client.force_login(merchant)
    response = client.get(f"/api/v1/orders/{order.order_no}/")
    assert response.status_code == 200 and response.json()["order_no"] == order.order_no


ACTIONS = [step.url_path for step in OrderViewSet.get_extra_actions()]  # every action endpoint the API has


def test_another_organisations_order_is_404_for_every_method(api, keys, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    for persona in ("merchant2", "provider2", "outsider"):
        api.as_key(keys[persona])
        assert api.get(f"/api/v1/orders/{order.order_no}/").status_code == 404
        for action in ACTIONS:
            response = act(api, order.order_no, action, {"note": "x"})
            assert response.status_code == 404, (persona, action)
            assert response.json()["code"] == "not_found"
        listed = api.get("/api/v1/orders/").json()["results"]
        assert order.order_no not in [o["order_no"] for o in listed]
    order.refresh_from_db()
    assert order.version == OrderEvent.objects.filter(order=order).count()
    assert order.state == S.ARRIVED


@pytest.mark.parametrize(
    ("persona", "action", "data"),
    [
        ("merchant", "sign-in", {}),
        ("merchant", "refund", {"reason": "x"}),
        ("merchant", "extend-deadline", {"hours": 5}),
        ("provider", "refund", {"reason": "x"}),
        ("provider", "confirm", {}),
        ("provider", "unblock", {}),
        ("provider", "ship", {"carrier": "SF", "tracking_no": "SF12345678"}),
        ("platform", "sign-in", {}),
        ("platform", "appraise", {"result": "pass"}),
    ],
)
def test_a_key_of_the_wrong_kind_cannot_take_the_action(api, keys, order, persona, action, data):
    response = act(api.as_key(keys[persona]), order.order_no, action, data)
    assert response.status_code == 403 and response.json()["code"] == "not_allowed"


# --- list, detail, worklists ----------------------------------------------------------


def test_lists_are_scoped_filtered_and_cursor_paginated(api, keys, merchant_org, merchant2_org, provider_org):
    mine = [new_order(merchant_org, provider_org) for _ in range(3)]
    theirs = new_order(merchant2_org, provider_org)
    advance(mine[0], S.INBOUND)

    api.as_key(keys["merchant"])
    page = api.get("/api/v1/orders/", {"page_size": 2}).json()
    assert len(page["results"]) == 2 and page["next"]
    rest = api.get(page["next"]).json()
    seen = [o["order_no"] for o in page["results"] + rest["results"]]
    assert seen == [o.order_no for o in mine]

    assert [o["order_no"] for o in api.get("/api/v1/orders/", {"state": "inbound"}).json()["results"]] == [
        mine[0].order_no
    ]
    api.as_key(keys["platform"])
    found = api.get("/api/v1/orders/", {"merchant": merchant2_org.code}).json()["results"]
    assert [o["order_no"] for o in found] == [theirs.order_no]
    found = api.get("/api/v1/orders/", {"trade_no": theirs.trade_no}).json()["results"]
    assert [o["order_no"] for o in found] == [theirs.order_no]
    soon = (timezone.now() + timedelta(days=30)).isoformat()
    assert len(api.get("/api/v1/orders/", {"deadline_before": soon}).json()["results"]) == 4


@pytest.mark.parametrize("persona", ["merchant", "provider", "platform"])
def test_a_query_naming_no_filter_lists_what_the_filters_would(
    api, keys, persona, platform, merchant_org, merchant2_org, provider_org
):
    from orders.filtersets import OrderFilterSet

    orders = [new_order(merchant_org, provider_org), new_order(merchant2_org, provider_org)]
    advance(orders[0], S.COMPLETED)
    api.as_key(keys[persona])
    organisation = {"merchant": merchant_org, "provider": provider_org, "platform": platform}[persona]
    scope = Order.objects.visible_to_organisation(organisation)
    filtered = OrderFilterSet({}, scope, organisation=organisation).qs
    expected = sorted(filtered.values_list("order_no", flat=True))
    assert expected  # a finished order is listed: the API lists every order in scope
    for query in [{}, {"page_size": 50}, {"finished": "0"}, {"unheard_of": "1"}, {"q": ""}]:
        listed = api.get("/api/v1/orders/", query).json()["results"]
        assert sorted(o["order_no"] for o in listed) == expected, query


def test_which_queries_name_an_api_filter():
    from orders.filtersets import OrderFilterSet

    for name in ["q", "state", "merchant", "provider", "trade_no", "deadline_before", "risk", "at_risk"]:
        assert OrderFilterSet.names_a_filter({name: ""}), name
    for query in [{}, {"cursor": "x", "page_size": "5"}, {"finished": "1"}]:
        assert not OrderFilterSet.names_a_filter(query), query


def test_a_bad_filter_value_is_a_400(api, keys):
    response = api.as_key(keys["platform"]).get("/api/v1/orders/", {"state": "teleported"})
    assert response.status_code == 400 and "state" in response.json()["fields"]
    for bad in ["soon", "3461-06-21T06:59:47-21:29", "9999-12-31T23:59:59+14:00"]:
        response = api.get("/api/v1/orders/", {"deadline_before": bad})
        assert response.status_code == 400 and "deadline_before" in response.json()["fields"], bad
    response = api.get("/api/v1/orders/", {"trade_no": "T\x00"})
    assert response.status_code == 400


def test_detail_has_every_field_and_the_event_log(api, keys, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), S.APPRAISED)
    data = api.as_key(keys["provider"]).get(f"/api/v1/orders/{order.order_no}/").json()
    for field in [
        "trade_no",
        "sku",
        "amount",
        "auto_confirm_at",
        "state",
        "appraisal_result",
        "flow_blocked",
        "blocked_stage",
        "inbound_tracking_no",
        "waybill_no",
        "picked_up_at",
        "version",
    ]:
        assert field in data
    assert [e["action"] for e in data["events"]] == ["create", "ship", "carrier_delivery", "sign_in", "appraise"]
    assert data["events"][1]["actor"] == merchant_org.code


def test_worklists_for_providers_only(api, keys, merchant_org, provider_org):
    arrived = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    response = api.as_key(keys["provider"]).get("/api/v1/worklists/pending-sign-in/")
    assert [o["order_no"] for o in response.json()["results"]] == [arrived.order_no]
    assert api.get("/api/v1/worklists/to-pack/").json()["results"] == []
    assert api.get("/api/v1/worklists/to-dance/").status_code == 404
    assert api.as_key(keys["provider2"]).get("/api/v1/worklists/pending-sign-in/").json()["results"] == []
    assert api.as_key(keys["merchant"]).get("/api/v1/worklists/pending-sign-in/").status_code == 404


# --- actions and their refusals -----------------------------------------------------------


def test_refusals_carry_their_stable_codes(api, keys, merchant_org, provider_org):
    first = advance(new_order(merchant_org, provider_org, trade_no="T-R", sku="S"), S.SIGNED_IN)
    second = advance(new_order(merchant_org, provider_org, trade_no="T-R", sku="S"), S.SIGNED_IN)
    api.as_key(keys["provider"])

    assert act(api, first.order_no, "pack").json()["code"] == "invalid_transition"
    act(api, first.order_no, "appraise", {"result": "pass"})
    refused = act(api, second.order_no, "appraise", {"result": "pass"})
    assert refused.status_code == 409 and refused.json()["code"] == "split_group_already_appraised"

    act(api, first.order_no, "inspect")
    act(api, first.order_no, "pack")
    act(api, first.order_no, "report-blocked", {"stage": "packing", "reason": "station down"})
    refused = act(api, first.order_no, "print-waybill")
    assert refused.status_code == 409 and refused.json()["code"] == "flow_blocked"
    assert act(api, first.order_no, "report-blocked", {"stage": "packing", "reason": "x"}).json()["code"] == (
        "already_blocked"
    )
    stale = act(api, second.order_no, "appraise", {"result": "not_required"}, HTTP_IF_MATCH="1")
    assert stale.status_code == 409 and stale.json()["code"] == "conflict"
    bad = act(api, second.order_no, "appraise", {"result": "maybe"})
    assert bad.status_code == 400 and "result" in bad.json()["fields"]
    extra = act(api, second.order_no, "inspect", {"colour": "red"})
    assert extra.status_code == 400 and "colour" in extra.json()["fields"]
    control = act(api, second.order_no, "appraise", {"result": "not_required", "note": "a\x07b"})
    assert control.status_code == 400 and control.json()["code"] == "invalid"


def test_a_finished_order_refuses_with_order_terminal(api, keys, merchant_org, provider_org):
    done = advance(new_order(merchant_org, provider_org), S.REFUNDED)
    response = act(api.as_key(keys["platform"]), done.order_no, "refund", {"reason": "again"})
    assert response.status_code == 409 and response.json()["code"] == "order_terminal"


def test_a_whole_life_through_the_api_only(api, keys, merchant_org, provider_org, settings):
    from portal.models import CarrierIntegration

    CarrierIntegration.objects.create(name="sf", secret="s3cret", carrier_codes="SF")

    def carrier_post(events):
        import hashlib
        import hmac
        import json

        raw = json.dumps({"events": events}).encode()
        signature = hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
        response = api.generic(
            "POST", "/api/v1/carrier-events/", raw, content_type="application/json", HTTP_X_SIGNATURE=signature
        )
        assert response.status_code == 200, response.content
        return response.json()

    api.as_key(keys["platform"])
    assert api.post("/api/v1/orders/", body(), format="json").status_code == 201
    api.as_key(keys["merchant"])
    assert act(api, "API-1", "ship", {"carrier": "SF", "tracking_no": "SF7000000001"}).json()["state"] == "inbound"
    t0 = timezone.now()
    carrier_post(
        [{"tracking_no": "SF7000000001", "carrier": "SF", "status": "delivered", "occurred_at": t0.isoformat()}]
    )
    api.as_key(keys["provider"])
    for action, data in [("sign-in", {}), ("appraise", {"result": "pass"}), ("inspect", {}), ("pack", {})]:
        assert act(api, "API-1", action, data).status_code == 200, action
    printed = act(api, "API-1", "print-waybill").json()
    assert printed["state"] == "waybill_printed" and printed["waybill_no"]
    waybill = printed["waybill_no"]
    carrier_post([{"tracking_no": waybill, "carrier": "SF", "status": "picked_up", "occurred_at": t0.isoformat()}])
    result = carrier_post(
        [{"tracking_no": waybill, "carrier": "SF", "status": "delivered", "occurred_at": t0.isoformat()}]
    )
    assert result["results"][0]["order_no"] == "API-1"
    api.as_key(keys["platform"])
    done = act(api, "API-1", "confirm").json()
    assert done["state"] == "completed"

    order = Order.objects.get(order_no="API-1")
    events = list(order.events.order_by("seq").values_list("action", "source"))
    assert events == [
        (Action.CREATE, "api"),
        (Action.SHIP, "api"),
        (Action.CARRIER_DELIVERY, "carrier"),
        (Action.SIGN_IN, "api"),
        (Action.APPRAISE, "api"),
        (Action.INSPECT, "api"),
        (Action.PACK, "api"),
        (Action.PRINT_WAYBILL, "api"),
        (Action.CARRIER_PICKUP, "carrier"),
        (Action.CARRIER_DELIVERY, "carrier"),
        (Action.CONFIRM, "api"),
    ]
    fees = dict(FeeCharge.objects.filter(order=order).values_list("kind", "amount"))
    assert fees == {FeeKind.APPRAISAL: Decimal("30.00"), FeeKind.LOGISTICS: Decimal("12.00")}


def test_the_provider_sees_the_buyer_masked(api, keys, merchant_org, provider_org):
    order = new_order(merchant_org, provider_org, buyer_phone="13812345678", buyer_name="王小明")
    provider_view = api.as_key(keys["provider"]).get(f"/api/v1/orders/{order.order_no}/").json()
    merchant_view = api.as_key(keys["merchant"]).get(f"/api/v1/orders/{order.order_no}/").json()
    assert provider_view["buyer_phone"] == "138****5678" and merchant_view["buyer_phone"] == "13812345678"


def test_the_event_log_does_not_leak_the_buyer_to_the_provider(api, keys, merchant_org, provider_org):
    buyer = {"buyer_name": "王小明", "buyer_phone": "13812345678", "buyer_address": "上海市浦东新区世纪大道100号"}
    assert api.as_key(keys["platform"]).post("/api/v1/orders/", body(**buyer), format="json").status_code == 201
    provider_view = api.as_key(keys["provider"]).get("/api/v1/orders/API-1/")
    merchant_view = api.as_key(keys["merchant"]).get("/api/v1/orders/API-1/")
    created = merchant_view.json()["events"][0]["payload"]["changes"]
    assert created["buyer_phone"] == "13812345678"  # the merchant's own buyer, in full
    for value in buyer.values():
        assert value not in provider_view.content.decode()
    assert provider_view.json()["events"][0]["payload"]["changes"]["buyer_phone"] == "138****5678"


# --- idempotency ------------------------------------------------------------------------


def test_the_same_action_retried_with_one_key_acts_once(api, keys, merchant_org, provider_org):
    arrived = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    api.as_key(keys["provider"])
    first = act(api, arrived.order_no, "sign-in", HTTP_IDEMPOTENCY_KEY="retry-1")
    again = act(api, arrived.order_no, "sign-in", HTTP_IDEMPOTENCY_KEY="retry-1")
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
    assert OrderEvent.objects.filter(order=arrived, action=Action.SIGN_IN).count() == 1


def test_the_web_session_can_retry_with_one_key_too(merchant, merchant_org, provider_org):
    """A browser's session, with the CSRF check that reads the body before the view."""
    from django.middleware.csrf import get_token
    from django.test import Client, RequestFactory

    shipped = new_order(merchant_org, provider_org)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(merchant)
    token = get_token(RequestFactory().get("/"))
    browser.cookies["csrftoken"] = token

    def ship(tracking_no="SF2020202020"):
        return browser.post(
            f"/api/v1/orders/{shipped.order_no}/ship/",
            {"carrier": "SF", "tracking_no": tracking_no},
            content_type="application/json",
            HTTP_IDEMPOTENCY_KEY="web-1",
            HTTP_X_CSRFTOKEN=token,
        )

    first, again = ship(), ship()
    assert first.status_code == again.status_code == 200, first.content
    assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
    assert OrderEvent.objects.filter(order=shipped, action=Action.SHIP).count() == 1
    assert ship(tracking_no="SF3030303030").status_code == 422


def test_the_same_key_with_another_body_is_422(api, keys, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), S.SIGNED_IN)
    api.as_key(keys["provider"])
    act(api, order.order_no, "appraise", {"result": "not_required"}, HTTP_IDEMPOTENCY_KEY="k-2")
    response = act(api, order.order_no, "appraise", {"result": "pass"}, HTTP_IDEMPOTENCY_KEY="k-2")
    assert response.status_code == 422 and response.json()["code"] == "idempotency_key_reused"


def test_keys_are_per_organisation(api, keys, merchant_org, provider_org, merchant2_org):
    api.as_key(keys["platform"])
    a = api.post("/api/v1/orders/", body(), format="json", HTTP_IDEMPOTENCY_KEY="same")
    b = api.post("/api/v1/orders/", body(order_no="API-2"), format="json", HTTP_IDEMPOTENCY_KEY="other")
    assert a.status_code == b.status_code == 201
    api.as_key(keys["merchant"])
    response = act(api, "API-1", "ship", {"carrier": "SF", "tracking_no": "SF12345678"}, HTTP_IDEMPOTENCY_KEY="same")
    assert response.status_code == 200 and response.json()["state"] == "inbound"


@pytest.mark.parametrize(
    ("persona", "start", "action", "data", "after"),
    [
        ("provider", S.ARRIVED, "verify-pending", {"outcome": "cannot_determine", "note": "no answer"}, S.ARRIVED),
        ("provider", S.ARRIVED, "verify-pending", {"outcome": "signed"}, S.SIGNED_IN),
        ("platform", S.ARRIVED, "sign-in-on-behalf", {"note": "ERP refuses"}, S.SIGNED_IN),
        ("platform", S.PACKED, "refund", {"reason": "buyer asked"}, S.REFUNDED),
        ("platform", S.OUTBOUND, "extend-deadline", {"hours": 48}, S.OUTBOUND),
    ],
)
def test_more_actions_through_the_api(api, keys, merchant_org, provider_org, persona, start, action, data, after):
    order = advance(new_order(merchant_org, provider_org), start)
    response = act(api.as_key(keys[persona]), order.order_no, action, data)
    assert response.status_code == 200, response.json()
    assert response.json()["state"] == after
    event = OrderEvent.objects.get(order=order, seq=response.json()["version"])
    assert event.action == action.replace("-", "_") and event.source == "api"


def test_unblock_through_the_api_lets_the_waybill_print(api, keys, merchant_org, provider_org):
    packed = advance(new_order(merchant_org, provider_org), S.PACKED)
    act(api.as_key(keys["provider"]), packed.order_no, "report-blocked", {"stage": "packing", "reason": "x"})
    unblocked = act(api.as_key(keys["platform"]), packed.order_no, "unblock", {"note": "fixed"})
    assert unblocked.status_code == 200 and unblocked.json()["flow_blocked"] is False
    printed = act(api.as_key(keys["provider"]), packed.order_no, "print-waybill")
    assert printed.json()["state"] == "waybill_printed"


@pytest.mark.parametrize(
    ("start", "path", "data"),
    [(OrderState.ARRIVED, "sign-in", {}), (OrderState.SIGNED_IN, "appraise", {"result": "pass"})],
)
def test_a_single_action_answers_from_what_its_transaction_read(
    api, keys, merchant_org, provider_org, start, path, data
):
    """The key; the order locked with its split group and its organisations'
    codes in one statement; the update, the event and the risk check:
    nothing read again for the step or the answer, whether the order is
    alone or in a split group."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api.as_key(keys["provider"])
    client.get("/api/v1/orders/", {"page_size": 1})  # the key's first use is recorded once
    grouped = advance(new_order(merchant_org, provider_org, trade_no="T-PAIR"), start)
    new_order(merchant_org, provider_org, trade_no="T-PAIR")
    alone = advance(new_order(merchant_org, provider_org), start)
    counts = []
    for order in (alone, grouped):
        with CaptureQueriesContext(connection) as queries:
            response = client.post(f"/api/v1/orders/{order.order_no}/{path}/", data, format="json")
        assert response.status_code == 200, response.json()
        body = response.json()
        assert (body["merchant"], body["provider"]) == ("M-1", "P-1")
        assert body["in_split_group"] is (order is grouped)
        assert body["version"] == order.version + 1
        counts.append(len([q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]))
    assert counts == [5, 5], counts
