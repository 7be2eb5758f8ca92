"""Every URL the resolver knows, requested as every persona: 200 (or the page's
own answer) within scope, 404 outside it, a redirect to login when anonymous.

A new URL fails this test until its expectations are written down here.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from orders.choices import OrderState
from tests.factories import advance, new_order

PERSONAS = ("merchant", "merchant2", "provider", "provider2", "operator", "outsider")
IN_SCOPE_OF_ORDER = {"merchant", "provider", "operator"}
PROVIDERS = {"provider", "provider2", "outsider"}

# name -> (method, kwargs builder, personas expected in scope, status in scope)
# Out of scope is always 404; anonymous is always a redirect to login.
EXPECTATIONS = {
    "home": ("get", lambda o: {}, set(PERSONAS), 302),
    "operator-home": ("get", lambda o: {}, {"operator"}, 200),
    "set-language": ("post", lambda o: {}, set(PERSONAS), 302),
    "orders:list": ("get", lambda o: {}, set(PERSONAS), 200),
    "orders:detail": ("get", lambda o: {"order_no": o.order_no}, IN_SCOPE_OF_ORDER, 200),
    # An empty form: in scope it is refused as bad input (400), nothing changes.
    "orders:action": ("post", lambda o: {"order_no": o.order_no, "action": "sign-in"}, IN_SCOPE_OF_ORDER, 400),
    "orders:worklist": ("get", lambda o: {"slug": "pending-sign-in"}, PROVIDERS, 200),
    "orders:bulk-sign-in": ("post", lambda o: {}, PROVIDERS, 302),
    "orders:search": ("get", lambda o: {}, set(PERSONAS), 302),
}
# Served by Django itself, with their own rules: the admin, login and logout.
NOT_OURS = {"login", "logout"}


def our_url_names():
    names = set()

    def walk(patterns, namespace=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin" or pattern.app_name == "admin":
                    continue
                walk(pattern.url_patterns, f"{pattern.namespace}:" if pattern.namespace else namespace)
            elif isinstance(pattern, URLPattern) and pattern.name:
                names.add(namespace + pattern.name)

    walk(get_resolver().url_patterns)
    return names - NOT_OURS


def test_every_url_has_its_expectations_written_down():
    assert our_url_names() == set(EXPECTATIONS)


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
def test_url_as_every_persona(client, personas, merchant_org, provider_org, name):
    order = advance(new_order(merchant_org, provider_org), OrderState.ARRIVED)
    method, kwargs, in_scope, status = EXPECTATIONS[name]
    url = reverse(name, kwargs=kwargs(order))

    response = getattr(client, method)(url)
    assert response.status_code == 302 and response["Location"].startswith(reverse("login")), "anonymous"

    for persona in PERSONAS:
        client.force_login(personas[persona])
        response = getattr(client, method)(url)
        expected = status if persona in in_scope else 404
        assert response.status_code == expected, (persona, url, response.status_code)
    order.refresh_from_db()
    assert order.state == OrderState.ARRIVED, "no request in this matrix may change the order"
