"""Hostile input to every route, web and API, signed in and not: no answer is a
5xx, in either DEBUG mode. Then the refusals themselves: nesting, If-Match,
page numbers, missing slashes, order numbers, bodies that are not UTF-8 or
too large."""

import hashlib
import hmac
import json

import pytest
from django.test import override_settings
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from orders.choices import OrderState
from orders.models import Order
from portal.models import CarrierIntegration
from portal.paging import MAX_PAGE
from portal.parsers import MAX_JSON_DEPTH
from tests.factories import advance, new_order, order_body
from tests.test_permission_matrix import EXPECTATIONS, case_and_escalation, import_job_of, notification_for

SECRET = "carrier-secret-for-hostile-tests"
NESTED = ("[" * 950 + "]" * 950).encode()  # the 1.9 KB body of the drill
NOT_UTF8 = b'{"note": "\xff\xfe\xc3("}'
HUGE_PAGE = "99999999999999999999"
BAD_IF_MATCH = ("\u00b2", "9" * 4300, "\u00e9t\u00e9", "1.5", "-1")


def nested_object(depth):
    return ('{"a":' * depth + "1" + "}" * depth).encode()


@pytest.fixture
def order(merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), OrderState.ARRIVED)
    order.case, order.escalation = case_and_escalation(order)
    return order


SAMPLE = {"int": 1, "str": "x", "slug": "x", "path": "x", "uuid": "00000000-0000-0000-0000-000000000000"}


def every_route():
    """(name, converters) of every named route the resolver knows, the admin's aside."""
    found = []

    def walk(patterns, namespace="", converters=None):
        for pattern in patterns:
            here = {**(converters or {}), **pattern.pattern.converters}
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin" or pattern.app_name == "admin":
                    continue
                walk(pattern.url_patterns, f"{pattern.namespace}:" if pattern.namespace else namespace, here)
            elif isinstance(pattern, URLPattern) and pattern.name:
                found.append((namespace + pattern.name, here))

    walk(get_resolver().url_patterns)
    return found


@pytest.fixture
def routes(order, personas):
    """Every named route with its method and address: with real objects where the
    permission matrix knows how to build them, with sample values otherwise."""
    order.notification = notification_for(personas["provider"])
    order.import_job = import_job_of(personas["merchant"])
    built = []
    for name, converters in every_route():
        if name in EXPECTATIONS:
            method, kwargs, *_rest = EXPECTATIONS[name]
            built.append((name, method, reverse(name, kwargs=kwargs(order))))
        else:
            kwargs = {
                key: SAMPLE.get(type(conv).__name__.removesuffix("Converter").lower(), "x")
                for key, conv in converters.items()
            }
            built.append((name, "post", reverse(name, kwargs=kwargs)))
    return built


def hostile_requests(method, url):
    """(label, client call arguments) for one route: what the drill sent."""
    # generic(): the raw bytes as they are, where post() would encode them itself.
    yield "nested json", ("generic", "POST", url, NESTED), {"content_type": "application/json"}
    yield "not utf-8", ("generic", "POST", url, NOT_UTF8), {"content_type": "application/json"}
    yield "unknown charset", ("generic", "POST", url, b"{}"), {"content_type": "application/json; charset=no-such"}
    for value in BAD_IF_MATCH:
        yield f"if-match {value[:8]!r}", (method, url, {}), {"HTTP_IF_MATCH": value}
    yield "huge page", ("get", f"{url}?page={HUGE_PAGE}&per_page={HUGE_PAGE}"), {}
    yield "page past the bound", ("get", f"{url}?page={MAX_PAGE + 1}&per_page=0"), {}
    if url.endswith("/"):
        yield "missing slash, post", ("generic", "POST", url[:-1], b'{"a": 1}'), {"content_type": "application/json"}
        yield "missing slash, get", ("get", url[:-1]), {}


def assert_no_server_error(client, routes):
    seen = 0
    for name, method, url in routes:
        for label, (verb, *args), extra in hostile_requests(method, url):
            response = getattr(client, verb)(*args, **extra)
            # /health/'s 503 is its answer to a slow or missing service, not a crash.
            unhealthy = name == "health" and response.status_code == 503
            assert response.status_code < 500 or unhealthy, (name, label, response.status_code)
            seen += 1
    assert seen > len(routes) * 8  # every route got the whole list


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_no_hostile_input_gets_a_server_error_on_any_route(client, api, operator, keys, routes, debug):
    with override_settings(DEBUG=debug):
        assert_no_server_error(client, routes)  # anonymous
        client.force_login(operator)
        assert_no_server_error(client, routes)  # a signed-in person (sessions reach the API too)
        assert_no_server_error(api.as_key(keys["provider"]), routes)  # an organisation's key


# --- nesting and bodies --------------------------------------------------------


def test_deep_nesting_is_refused_as_a_malformed_request(api, keys):
    response = api.as_key(keys["platform"]).generic(
        "POST", "/api/v1/orders/", nested_object(MAX_JSON_DEPTH + 1), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "malformed_request"


def test_nesting_within_the_limit_reaches_validation(api, keys):
    response = api.as_key(keys["platform"]).generic(
        "POST", "/api/v1/orders/", nested_object(MAX_JSON_DEPTH - 1), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"  # parsed, then refused field by field


def test_a_body_that_is_not_utf8_is_a_malformed_request(api, keys):
    response = api.as_key(keys["platform"]).generic(
        "POST", "/api/v1/orders/", NOT_UTF8, content_type="application/json"
    )
    assert (response.status_code, response.json()["code"]) == (400, "malformed_request")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_a_body_over_the_size_limit_is_refused(api, keys):
    raw = json.dumps({"order_no": "x" * 20_000}).encode()
    response = api.as_key(keys["platform"]).generic("POST", "/api/v1/orders/", raw, content_type="application/json")
    assert (response.status_code, response.json()["code"]) == (400, "malformed_request")


def signed(api, raw):
    signature = hmac.new(SECRET.encode(), raw, hashlib.sha256).hexdigest()
    return api.generic(
        "POST", "/api/v1/carrier-events/", raw, content_type="application/json", HTTP_X_SIGNATURE=signature
    )


@pytest.mark.parametrize("raw", [NESTED, nested_object(MAX_JSON_DEPTH + 1), NOT_UTF8], ids=["array", "object", "utf8"])
def test_the_signed_carrier_webhook_refuses_a_hostile_body_as_400(api, db, raw):
    CarrierIntegration.objects.create(name="sf-express", secret=SECRET)
    response = signed(api, raw)
    assert (response.status_code, response.json()["code"]) == (400, "malformed_request")


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=10_000)
def test_the_carrier_webhook_refuses_a_body_over_the_size_limit(api, db):
    CarrierIntegration.objects.create(name="sf-express", secret=SECRET)
    response = signed(api, json.dumps({"events": [], "pad": "x" * 20_000}).encode())
    assert (response.status_code, response.json()["code"]) == (400, "malformed_request")


# --- If-Match -------------------------------------------------------------------------


@pytest.mark.parametrize("value", BAD_IF_MATCH)
def test_an_if_match_that_is_not_a_version_is_refused_and_changes_nothing(api, keys, order, value):
    response = api.as_key(keys["provider"]).post(
        f"/api/v1/orders/{order.order_no}/inspect/", {}, format="json", HTTP_IF_MATCH=value
    )
    assert (response.status_code, response.json()["code"]) == (400, "malformed_request")
    order.refresh_from_db()
    assert order.state == OrderState.ARRIVED


def test_a_quoted_current_version_in_if_match_is_accepted(api, keys, order):
    order.refresh_from_db()
    response = api.as_key(keys["provider"]).post(
        f"/api/v1/orders/{order.order_no}/sign-in/", {}, format="json", HTTP_IF_MATCH=f'"{order.version}"'
    )
    assert response.status_code == 200, response.json()
    order.refresh_from_db()
    assert order.state == OrderState.SIGNED_IN


@pytest.mark.parametrize("moment", ["0169-04-21T17:21:50.0-18:24", "2026-11-30T08:00:00+23:59", "9999-12-31T23:59:59Z"])
@pytest.mark.parametrize("name", ["opened", "escalated"])
def test_a_case_moment_out_of_this_world_is_refused_not_a_server_error(
    api, keys, client, operator, order, name, moment
):
    response = api.as_key(keys["merchant"]).get("/api/v1/cases/", {name: moment})
    assert response.status_code == 400, response.content
    assert name in response.json()["fields"]
    client.force_login(operator)
    page = client.get("/cases/", {name: moment})
    assert page.status_code == 200
    assert "The time must be between 2000 and 2100" in page.content.decode()


# --- pages ----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/orders/", "/cases/", "/escalations/", "/operator/"])
def test_an_absurd_page_number_shows_the_first_page(client, operator, order, path):
    client.force_login(operator)
    response = client.get(f"{path}?page={HUGE_PAGE}")
    assert response.status_code == 200
    assert response.context["table"].page.number == 1


def test_a_page_size_not_offered_falls_back_to_the_default(client, operator, merchant_org, provider_org):
    for _ in range(30):
        new_order(merchant_org, provider_org)
    client.force_login(operator)
    response = client.get(f"/orders/?per_page={HUGE_PAGE}")
    assert response.status_code == 200
    assert len(response.context["table"].page.object_list) == 25
    assert len(client.get("/orders/?per_page=10").context["table"].page.object_list) == 10


# --- a missing trailing slash -------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_an_api_post_without_its_slash_is_a_json_404_naming_the_address(api, keys, order, debug):
    with override_settings(DEBUG=debug):
        response = api.as_key(keys["provider"]).post(f"/api/v1/orders/{order.order_no}/inspect", {}, format="json")
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert f"/api/v1/orders/{order.order_no}/inspect/" in response.json()["detail"]
    order.refresh_from_db()
    assert order.state == OrderState.ARRIVED


@pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])
def test_a_web_post_without_its_slash_is_a_404_and_a_get_is_redirected(client, provider, order, debug):
    client.force_login(provider)
    with override_settings(DEBUG=debug):
        action = reverse("orders:action", kwargs={"order_no": order.order_no, "action": "inspect"})
        posted = client.post(action[:-1])
        fetched = client.get("/orders")
    assert posted.status_code == 404
    assert fetched.status_code == 301 and fetched["Location"] == "/orders/"


# --- order numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("field", ["order_no", "trade_no", "sku"])
@pytest.mark.parametrize("value", ["a/b", "..", ".hidden", "a b", "caf\u00e9", "a%2Fb", "x" * 65, "a?b", "a#b"])
def test_a_number_that_cannot_be_an_address_segment_is_refused(api, keys, merchant_org, provider_org, field, value):
    response = api.as_key(keys["platform"]).post("/api/v1/orders/", order_body(**{field: value}), format="json")
    assert response.status_code == 400
    assert field in response.json()["fields"]
    assert not Order.objects.exists()


@pytest.mark.parametrize("number", ["DEMO-00001", "PO-77-0032", "O00000001", "T2025.1_A", "116610", "a"])
def test_the_numbers_in_use_are_still_accepted(api, keys, merchant_org, provider_org, number):
    body = order_body(order_no=number, trade_no=f"T{number}", sku=number)
    response = api.as_key(keys["platform"]).post("/api/v1/orders/", body, format="json")
    assert response.status_code == 201, response.json()
    assert api.get(f"/api/v1/orders/{number}/").status_code == 200
