"""Login, logout, and each role's own home page."""

import pytest
from django.urls import reverse

from tests.factories import advance, new_order

PASSWORD = "correct horse battery staple"


@pytest.mark.parametrize(
    ("persona", "home"),
    [
        ("merchant", "/orders/"),
        ("provider", "/worklists/pending-sign-in/"),
        ("operator", "/operator/"),
    ],
)
def test_each_role_lands_on_its_own_home_page_after_login(client, personas, persona, home):
    user = personas[persona]
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == home
    assert response.status_code == 200


def test_the_operators_overview_is_not_there_for_others(client, personas):
    for name, user in personas.items():
        client.force_login(user)
        expected = 200 if user.kind == "platform" else 404
        assert client.get(reverse("operator-home")).status_code == expected, name


def test_anonymous_visitors_are_sent_to_login(client, db):
    for url in ["/", "/orders/", "/worklists/pending-sign-in/", "/operator/"]:
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_home_pages_show_the_orders_of_the_role(client, personas, merchant_org, merchant2_org, provider_org):
    mine = new_order(merchant_org, provider_org)
    theirs = new_order(merchant2_org, provider_org)
    advance(mine, "arrived")

    client.force_login(personas["merchant"])
    page = client.get(reverse("orders:list")).content.decode()
    assert mine.order_no in page and theirs.order_no not in page

    client.force_login(personas["provider"])
    page = client.get(reverse("orders:list")).content.decode()
    assert mine.order_no in page and theirs.order_no in page
    page = client.get(reverse("orders:worklist", args=["pending-sign-in"])).content.decode()
    assert mine.order_no in page and theirs.order_no not in page

    client.force_login(personas["provider2"])
    page = client.get(reverse("orders:list")).content.decode()
    assert mine.order_no not in page


def test_order_detail_is_404_outside_the_scope(client, personas, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), "completed")
    url = reverse("orders:detail", args=[order.order_no])
    seen = {}
    for name, user in personas.items():
        client.force_login(user)
        seen[name] = client.get(url).status_code
    assert seen == {
        "merchant": 200,
        "merchant2": 404,
        "provider": 200,
        "provider2": 404,
        "operator": 200,
        "outsider": 404,
    }


def test_order_detail_shows_the_timeline_and_the_fees(client, personas, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), "completed")
    client.force_login(personas["operator"])
    page = client.get(reverse("orders:detail", args=[order.order_no])).content.decode()
    assert page.count('<li class="py-1 border-bottom">') == order.version
    assert "¥30.00" in page and "¥42.00" in page


def test_logout_is_a_post_and_ends_the_session(client, personas):
    client.force_login(personas["merchant"])
    assert client.post(reverse("logout")).status_code == 302
    assert client.get(reverse("orders:list")).status_code == 302


def test_login_is_locked_after_five_failures(client, personas):
    user = personas["merchant"]
    for _ in range(5):
        client.post(reverse("login"), {"username": user.username, "password": "wrong"})
    response = client.post(reverse("login"), {"username": user.username, "password": PASSWORD})
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session
