"""Deactivating an organisation or a person takes effect on the very next
request, on every kind of route.

The answers: a web page, an action and an export send the person to the login
page (302, their session ended); the session API answers 401; an API key of a
deactivated organisation answers 401. Nothing changes either way.
"""

import pytest
from django.contrib.auth import SESSION_KEY
from django.urls import reverse

from orders.choices import OrderState as S
from orders.models import Order, OrderEvent
from portal.models import Organisation, User
from tests.factories import new_order

PASSWORD = "correct horse battery staple"


def deactivate(who, merchant):
    if who == "organisation":
        Organisation.objects.filter(pk=merchant.organisation_id).update(is_active=False)
    else:
        User.objects.filter(pk=merchant.pk).update(is_active=False)


def unchanged(order):
    fresh = Order.objects.get(pk=order.pk)
    return fresh.state == S.AWAITING_SHIPMENT and fresh.version == order.version and fresh.inbound_tracking_no == ""


@pytest.fixture
def shipment(merchant_org, provider_org):
    return new_order(merchant_org, provider_org)


def logged_in(client, merchant):
    client.force_login(merchant)
    assert client.get(reverse("orders:list")).status_code == 200
    return client


def goes_to_login(response):
    return response.status_code == 302 and response["Location"].startswith(reverse("login"))


WHO = ["organisation", "person"]


@pytest.mark.parametrize("who", WHO)
def test_a_web_page_sends_a_deactivated_person_to_login_and_ends_the_session(client, merchant, shipment, who):
    logged_in(client, merchant)
    deactivate(who, merchant)

    assert goes_to_login(client.get(reverse("orders:list")))
    assert SESSION_KEY not in client.session
    # Reactivating does not bring the ended session back.
    Organisation.objects.update(is_active=True)
    User.objects.update(is_active=True)
    assert goes_to_login(client.get(reverse("orders:list")))


@pytest.mark.parametrize("who", WHO)
def test_a_web_action_of_a_deactivated_person_changes_nothing(client, merchant, shipment, who):
    logged_in(client, merchant)
    deactivate(who, merchant)

    response = client.post(
        reverse("orders:action", args=[shipment.order_no, "ship"]),
        {"ship-carrier": "SF", "ship-tracking_no": "SF1000200030", "ship-version": shipment.version},
    )

    assert goes_to_login(response)
    assert unchanged(shipment)
    assert OrderEvent.objects.filter(order=shipment).count() == 1


@pytest.mark.parametrize("who", WHO)
def test_an_export_of_a_deactivated_person_sends_no_orders(client, merchant, shipment, who):
    logged_in(client, merchant)
    deactivate(who, merchant)

    response = client.get(reverse("orders:list"), {"export": "csv"})

    assert goes_to_login(response)
    assert shipment.order_no.encode() not in response.content


@pytest.mark.parametrize("who", WHO)
def test_the_session_api_refuses_a_deactivated_person(client, merchant, shipment, who):
    logged_in(client, merchant)
    assert client.get("/api/v1/orders/").status_code == 200
    deactivate(who, merchant)

    listed = client.get("/api/v1/orders/")
    shipped = client.post(
        f"/api/v1/orders/{shipment.order_no}/ship/",
        {"carrier": "SF", "tracking_no": "SF1000200030"},
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY="deactivated-1",
    )

    assert listed.status_code == 401
    assert shipment.order_no not in listed.content.decode()
    assert shipped.status_code == 401
    assert unchanged(shipment)


def test_an_api_key_of_a_deactivated_organisation_is_refused(api, keys, merchant, shipment):
    assert api.as_key(keys["merchant"]).get("/api/v1/orders/").status_code == 200
    deactivate("organisation", merchant)

    listed = api.get("/api/v1/orders/")
    shipped = api.post(
        f"/api/v1/orders/{shipment.order_no}/ship/",
        {"carrier": "SF", "tracking_no": "SF1000200030"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="deactivated-2",
    )

    assert listed.status_code == 401
    assert shipped.status_code == 401
    assert unchanged(shipment)


@pytest.mark.parametrize("who", WHO)
def test_login_is_refused_with_a_clear_message(client, merchant, who):
    deactivate(who, merchant)

    response = client.post(
        reverse("login"), {"username": merchant.username, "password": PASSWORD}, HTTP_ACCEPT_LANGUAGE="en"
    )

    assert response.status_code == 200
    assert "This account is deactivated." in response.content.decode()
    assert SESSION_KEY not in client.session


def test_a_wrong_password_for_a_deactivated_account_says_nothing_about_it(client, merchant):
    deactivate("organisation", merchant)

    response = client.post(
        reverse("login"), {"username": merchant.username, "password": "wrong"}, HTTP_ACCEPT_LANGUAGE="en"
    )

    assert "deactivated" not in response.content.decode()
    assert "did not match" in response.content.decode()


def test_the_colleagues_of_a_deactivated_person_keep_working(client, merchant_org, merchant, shipment):
    from tests.factories import UserFactory

    colleague = UserFactory(username="alice2", organisation=merchant_org)
    deactivate("person", merchant)

    response = client.post(reverse("login"), {"username": colleague.username, "password": PASSWORD})

    assert response.status_code == 302
    assert shipment.order_no in client.get(reverse("orders:list")).content.decode()


def test_scoping_sees_nothing_for_a_deactivated_organisation(merchant, shipment):
    assert Order.objects.visible_to(merchant).count() == 1
    merchant.organisation.is_active = False

    assert Order.objects.visible_to(merchant).count() == 0
    assert Order.objects.visible_to_organisation(merchant.organisation).count() == 0


def test_scoping_sees_nothing_for_a_deactivated_person(merchant, shipment):
    merchant.is_active = False

    assert Order.objects.visible_to(merchant).count() == 0
