"""The carrier webhook: signed, stored once, applied through the workflow."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from orders.choices import OrderState, ScanOutcome
from orders.models import CarrierScan, OrderEvent
from portal.models import CarrierIntegration
from tests.factories import advance, new_order

S = OrderState
SECRET = "carrier-secret-for-tests"


@pytest.fixture
def integration(db):
    return CarrierIntegration.objects.create(name="sf-express", secret=SECRET)


def post(api, events, secret=SECRET, signature=None, raw=None):
    raw = raw if raw is not None else json.dumps({"events": events}).encode()
    if signature is None:
        signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return api.generic(
        "POST", "/api/v1/carrier-events/", raw, content_type="application/json", HTTP_X_SIGNATURE=signature
    )


def scan(number, status="delivered", when=None, **extra):
    return {
        "tracking_no": number,
        "carrier": "SF",
        "status": status,
        "occurred_at": (when or timezone.now()).isoformat(),
        **extra,
    }


@pytest.mark.parametrize("signature", ["", "0" * 64, "not-hex", None])
def test_a_bad_signature_is_401_and_nothing_is_stored(api, integration, order, signature):
    shipped = order
    events = [scan("SF1234567890")]
    if signature is None:
        response = post(api, events, secret="the-wrong-secret")
    else:
        response = post(api, events, signature=signature)
    assert response.status_code == 401 and response.json()["code"] == "bad_signature"
    assert not CarrierScan.objects.exists()
    shipped.refresh_from_db()
    assert shipped.version == 1


def test_an_inactive_integration_cannot_post(api, integration):
    integration.is_active = False
    integration.save()
    assert post(api, [scan("SF1234567890")]).status_code == 401


def test_a_signed_batch_is_applied_and_a_replay_changes_nothing(api, integration, merchant_org, provider_org):
    shipped = advance(new_order(merchant_org, provider_org), S.INBOUND)
    batch = [scan(shipped.inbound_tracking_no, when=timezone.now() - timedelta(hours=2))]

    first = post(api, batch)
    assert first.status_code == 200
    assert first.json()["stored"] == 1 and first.json()["results"][0]["outcome"] == ScanOutcome.APPLIED
    shipped.refresh_from_db()
    assert shipped.state == S.ARRIVED
    version = shipped.version

    replay = post(api, batch)
    assert replay.json()["duplicates"] == 1 and replay.json()["stored"] == 0
    shipped.refresh_from_db()
    assert shipped.version == version
    assert CarrierScan.objects.count() == 1


def test_an_early_scan_for_an_unknown_number_applies_when_the_order_gets_it(api, keys, integration, order):
    early = post(api, [scan("SF5550001111", when=timezone.now() - timedelta(hours=5))]).json()
    assert early["results"][0]["outcome"] == ScanOutcome.PENDING

    response = api.as_key(keys["merchant"]).post(
        f"/api/v1/orders/{order.order_no}/ship/", {"carrier": "SF", "tracking_no": "SF5550001111"}, format="json"
    )

    assert response.json()["state"] == "arrived"
    assert CarrierScan.objects.get().outcome == ScanOutcome.APPLIED


def test_a_scan_naming_the_order_under_another_number_is_an_offline_shipment(
    api, integration, merchant_org, provider_org
):
    packed = advance(new_order(merchant_org, provider_org), S.PACKED)
    result = post(api, [scan("YT0000000001", status="picked_up", order_no=packed.order_no)]).json()
    assert result["results"][0]["outcome"] == ScanOutcome.OFFLINE
    packed.refresh_from_db()
    assert packed.state == S.PACKED
    assert OrderEvent.objects.filter(order=packed, action="offline_shipment").count() == 1


@pytest.mark.parametrize(
    "payload",
    [
        b"{not json",
        json.dumps({"events": []}).encode(),
        json.dumps({"events": [{"tracking_no": "SF1", "carrier": "SF"}]}).encode(),
        json.dumps({"events": [scan("SF1234567890", status="lost")]}).encode(),
        json.dumps({"events": [scan("SF1234567890") | {"occurred_at": "yesterday"}]}).encode(),
        json.dumps({"events": [scan("SF1234567890")] * 501}).encode(),
        json.dumps([scan("SF1234567890")]).encode(),
        json.dumps({"events": [scan("SF 12")]}).encode(),
    ],
    ids=["not-json", "empty", "missing-fields", "bad-status", "bad-time", "too-many", "not-an-object", "bad-number"],
)
def test_a_bad_batch_is_a_400_and_stores_nothing(api, integration, payload):
    response = post(api, None, raw=payload)
    assert response.status_code == 400, response.content
    assert not CarrierScan.objects.exists()


def test_a_batch_with_one_bad_scan_stores_none_of_it(api, integration, merchant_org, provider_org):
    shipped = advance(new_order(merchant_org, provider_org), S.INBOUND)
    response = post(api, [scan(shipped.inbound_tracking_no), scan("SF\x01BAD")])
    assert response.status_code == 400
    assert not CarrierScan.objects.exists()
    shipped.refresh_from_db()
    assert shipped.state == S.INBOUND
