"""The carrier webhook: signed, bound to its carriers, stored first, applied through the workflow."""

import hashlib
import hmac
import json
from datetime import timedelta

import pytest
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.utils import timezone

from orders import carrier
from orders.choices import OrderState, ScanOutcome
from orders.models import CarrierScan, OrderEvent
from orders.tasks import retry_pending_scans
from portal.models import CarrierIntegration
from tests.factories import advance, new_order

S = OrderState
SECRET = "carrier-secret-for-tests"


@pytest.fixture
def integration(db):
    return CarrierIntegration.objects.create(name="sf-express", secret=SECRET, carrier_codes="SF")


def post(api, events, secret=SECRET, signature=None, raw=None, **headers):
    raw = raw if raw is not None else json.dumps({"events": events}).encode()
    if signature is None:
        signature = hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return api.generic(
        "POST", "/api/v1/carrier-events/", raw, content_type="application/json", HTTP_X_SIGNATURE=signature, **headers
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


def test_a_scan_for_a_carrier_the_integration_does_not_sign_for_refuses_the_batch(
    api, integration, merchant_org, provider_org
):
    shipped = advance(new_order(merchant_org, provider_org), S.INBOUND)
    response = post(api, [scan(shipped.inbound_tracking_no), scan("YT0000000009") | {"carrier": "YTO"}])
    assert response.status_code == 403
    assert response.json()["code"] == "carrier_not_allowed" and "YTO" in response.json()["detail"]
    assert not CarrierScan.objects.exists()
    shipped.refresh_from_db()
    assert shipped.state == S.INBOUND


def test_carrier_codes_match_whatever_their_case(api, integration, merchant_org, provider_org):
    integration.carrier_codes = " sf , yto "
    integration.save()
    shipped = advance(new_order(merchant_org, provider_org), S.INBOUND)
    response = post(api, [scan(shipped.inbound_tracking_no) | {"carrier": "sf"}])
    assert response.status_code == 200 and response.json()["results"][0]["outcome"] == ScanOutcome.APPLIED


def test_the_secret_is_sealed_in_the_database_and_still_verifies(api, integration):
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM portal_carrierintegration WHERE id = %s", [integration.pk])
        stored = cursor.fetchone()[0]
    assert SECRET not in stored and len(stored) > 60
    assert CarrierIntegration.objects.get(pk=integration.pk).secret == SECRET
    assert post(api, [scan("SF5550002222")]).status_code == 200


def test_a_secret_sealed_under_another_key_verifies_nothing(api, integration, settings):
    settings.SECRET_KEY = "another-key-entirely-another-key-entirely-0123456789"
    assert post(api, [scan("SF5550003333")]).status_code == 401
    settings.SECRET_KEY_FALLBACKS = ["insecure-local-demo-key-never-use-in-production-0123456789abcdef"]
    assert post(api, [scan("SF5550003333")]).status_code == 200


def test_a_batch_is_stored_even_when_applying_it_fails_and_is_applied_later(
    api, integration, merchant_org, provider_org, monkeypatch
):
    shipped = advance(new_order(merchant_org, provider_org), S.INBOUND)
    real = carrier._resolve

    def broken(scan):
        raise DatabaseError("the order is locked for too long")

    monkeypatch.setattr(carrier, "_resolve", broken)
    response = post(api, [scan(shipped.inbound_tracking_no, when=timezone.now() - timedelta(hours=1))])
    assert response.status_code == 200
    assert response.json()["stored"] == 1 and response.json()["results"][0]["outcome"] == ScanOutcome.PENDING
    assert CarrierScan.objects.get().outcome == ScanOutcome.PENDING

    monkeypatch.setattr(carrier, "_resolve", real)
    assert retry_pending_scans() == 1
    shipped.refresh_from_db()
    assert shipped.state == S.ARRIVED
    assert OrderEvent.objects.filter(order=shipped, action="carrier_delivery").count() == 1


@pytest.fixture
def carrier_rate(monkeypatch):
    """Set the carrier budget for one test, from an empty counter."""
    from orders.api.views import CarrierThrottle

    def rate(value):
        monkeypatch.setattr(CarrierThrottle, "THROTTLE_RATES", {"carrier": value})
        # The limit counts in fixed windows: hold the clock in the middle of
        # one, so the test's requests never straddle two.
        monkeypatch.setattr(CarrierThrottle, "timer", staticmethod(lambda: 1_800_000_030.0))

    cache.clear()
    yield rate
    cache.clear()


def test_the_carrier_limit_is_per_address_and_ignores_a_forged_forwarded_for(api, integration, carrier_rate):
    carrier_rate("2/min")
    codes = [post(api, [scan(f"SF55500{n:05d}")], HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code for n in range(3)]
    assert codes == [200, 200, 429]
    assert post(api, [scan("SF5550000099")]).json()["code"] == "throttled"


def test_behind_a_trusted_proxy_the_address_it_reports_is_limited(api, integration, carrier_rate, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    carrier_rate("1/min")
    first = post(api, [scan("SF5550000001")], HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.1")
    other = post(api, [scan("SF5550000002")], HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.2")
    again = post(api, [scan("SF5550000003")], HTTP_X_FORWARDED_FOR="203.0.113.2")
    assert [first.status_code, other.status_code, again.status_code] == [200, 200, 429]


def test_the_admin_shows_a_new_secret_once_and_never_again(admin_client):
    response = admin_client.post(
        "/admin/portal/carrierintegration/add/",
        {"name": "yto-express", "carrier_codes": "YTO", "is_active": "on"},
        follow=True,
    )
    assert response.status_code == 200
    made = CarrierIntegration.objects.get(name="yto-express")
    assert len(made.secret) >= 40 and made.codes == {"YTO"}
    assert made.secret in response.content.decode()

    for page in ("/admin/portal/carrierintegration/", f"/admin/portal/carrierintegration/{made.pk}/change/"):
        shown = admin_client.get(page)
        assert shown.status_code == 200 and made.secret not in shown.content.decode()

    admin_client.post(
        f"/admin/portal/carrierintegration/{made.pk}/change/",
        {"name": "yto-express", "carrier_codes": "YTO, ZTO", "is_active": "on"},
    )
    kept = CarrierIntegration.objects.get(pk=made.pk)
    assert kept.secret == made.secret and kept.codes == {"YTO", "ZTO"}


def test_the_admin_refuses_an_integration_without_carrier_codes(admin_client):
    response = admin_client.post(
        "/admin/portal/carrierintegration/add/", {"name": "nobody", "carrier_codes": " , ", "is_active": "on"}
    )
    assert response.status_code == 200 and not CarrierIntegration.objects.filter(name="nobody").exists()


def test_issuing_a_new_secret_shows_it_once_and_the_old_one_stops_working(api, admin_client, integration):
    response = admin_client.post(
        "/admin/portal/carrierintegration/",
        {"action": "issue_new_secrets", "_selected_action": [integration.pk]},
        follow=True,
    )
    fresh = CarrierIntegration.objects.get(pk=integration.pk).secret
    assert fresh != SECRET and fresh in response.content.decode()
    assert post(api, [scan("SF5550004444")]).status_code == 401
    assert post(api, [scan("SF5550004444")], secret=fresh).status_code == 200
