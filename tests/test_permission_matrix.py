"""Every URL the resolver knows, requested as every persona: 200 (or the page's
own answer) within scope, 404 outside it, a redirect to login when anonymous.

A new URL fails this test until its expectations are written down here.
"""

import pytest
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from orders.api.views import OrderViewSet
from orders.choices import OrderState
from tests.factories import advance, new_order, replay_run

PERSONAS = ("merchant", "merchant2", "provider", "provider2", "operator", "outsider")
IN_SCOPE_OF_ORDER = {"merchant", "provider", "operator"}
PROVIDERS = {"provider", "provider2", "outsider"}

ANY = None  # in scope: any answer but 404 and 5xx (a refusal of the action itself is fine)
HEALTH = (200, 503)  # one of these (a tuple of allowed answers)
API_ACTIONS = [step.url_path for step in OrderViewSet.get_extra_actions()]

# name -> (method, kwargs builder, personas expected in scope, status in scope[, anonymous status])
# Out of scope is always 404; anonymous is a redirect to login on the web, 401 on the API.
EXPECTATIONS = {
    "home": ("get", lambda o: {}, set(PERSONAS), 302),
    "operator-home": ("get", lambda o: {}, {"operator"}, 200),
    "dashboard": ("get", lambda o: {}, set(PERSONAS), 200),
    "dashboard-csv": ("get", lambda o: {"chart": "cases"}, set(PERSONAS), 200),
    "set-language": ("post", lambda o: {}, set(PERSONAS), 302),
    "orders:list": ("get", lambda o: {}, set(PERSONAS), 200),
    "orders:detail": ("get", lambda o: {"order_no": o.order_no}, IN_SCOPE_OF_ORDER, 200),
    # An empty form: in scope it is refused as bad input (400), nothing changes.
    "orders:action": ("post", lambda o: {"order_no": o.order_no, "action": "sign-in"}, IN_SCOPE_OF_ORDER, 400),
    "orders:worklist": ("get", lambda o: {"slug": "pending-sign-in"}, PROVIDERS, 200),
    "orders:bulk": ("post", lambda o: {"slug": "pending-sign-in"}, PROVIDERS, 302),
    "orders:station": ("get", lambda o: {"slug": "pending-sign-in"}, PROVIDERS, 200),
    "orders:search": ("get", lambda o: {}, set(PERSONAS), 302),
    # Providers and the platform print labels (here none are ticked); a merchant never does.
    "orders:labels": ("get", lambda o: {}, PROVIDERS | {"operator"}, 200),
    "api-keys": ("get", lambda o: {}, set(PERSONAS), 200),
    # Merchants (their own orders) and the platform import; an import is its organisation's.
    "orders:import": ("get", lambda o: {}, {"merchant", "merchant2", "operator"}, 200),
    "orders:import-sample": ("get", lambda o: {"file_format": "csv"}, {"merchant", "merchant2", "operator"}, 200),
    "orders:import-job": ("get", lambda o: {"pk": o.import_job.pk}, {"merchant"}, 200),
    "orders:import-refused": ("get", lambda o: {"pk": o.import_job.pk}, {"merchant"}, 200),
    "risks:cases": ("get", lambda o: {}, set(PERSONAS), 200),
    "risks:case": ("get", lambda o: {"pk": o.case.pk}, IN_SCOPE_OF_ORDER, 200),
    # Only the case's owner (the provider) and the platform may act on it.
    "risks:case-acknowledge": ("post", lambda o: {"pk": o.case.pk}, {"provider", "operator"}, 302),
    # Empty forms: refused as bad input where the case is visible.
    "risks:case-resolve": ("post", lambda o: {"pk": o.case.pk}, IN_SCOPE_OF_ORDER, 400),
    "risks:case-escalate": ("post", lambda o: {"pk": o.case.pk}, IN_SCOPE_OF_ORDER, 400),
    "risks:case-split-choice": ("post", lambda o: {"pk": o.case.pk}, IN_SCOPE_OF_ORDER, 400),
    "risks:order-escalate": ("post", lambda o: {"order_no": o.order_no}, IN_SCOPE_OF_ORDER, 302),
    "risks:escalations": ("get", lambda o: {}, set(PERSONAS), 200),
    "risks:escalation-assign": ("post", lambda o: {"pk": o.escalation.pk}, {"operator"}, 302),
    # Empty forms are refused as bad input where the escalation is visible.
    "risks:escalation-comment": ("post", lambda o: {"pk": o.escalation.pk}, {"provider", "operator"}, 400),
    "risks:escalation-close": ("post", lambda o: {"pk": o.escalation.pk}, {"operator"}, 400),
    # Only operators close it or act on the order; for the provider who raised it those are not there.
    "risks:escalation-act": (
        "post",
        lambda o: {"pk": o.escalation.pk, "action": "extend-deadline"},
        {"operator"},
        400,
    ),
    # The replay of the risk rules is the platform's alone.
    "risks:replays": ("get", lambda o: {}, {"operator"}, 200),
    "risks:replay": ("get", lambda o: {"pk": replay_run().pk}, {"operator"}, 200),
    "risks:replay-rules": ("get", lambda o: {"pk": replay_run().pk}, {"operator"}, 200),
    "inbox": ("get", lambda o: {}, set(PERSONAS), 200),
    "inbox-count": ("get", lambda o: {}, set(PERSONAS), 200),
    "inbox-read-all": ("post", lambda o: {}, set(PERSONAS), 302),
    # A notification is its recipient's: the provider's, here.
    "inbox-read": ("post", lambda o: {"pk": o.notification.pk}, {"provider"}, 302),
    "notification-preferences": ("get", lambda o: {}, set(PERSONAS), 200),
    "risks:escalation": ("get", lambda o: {"pk": o.escalation.pk}, {"provider", "operator"}, 200),
    "risks-api:case-list": ("get", lambda o: {}, set(PERSONAS), 200, 401),
    "risks-api:case-detail": ("get", lambda o: {"pk": o.case.pk}, IN_SCOPE_OF_ORDER, 200, 401),
    "risks-api:case-acknowledge": ("post", lambda o: {"pk": o.case.pk}, IN_SCOPE_OF_ORDER, ANY, 401),
    "risks-api:case-resolve": ("post", lambda o: {"pk": o.case.pk}, IN_SCOPE_OF_ORDER, 400, 401),
    "risks-api:case-escalate": ("post", lambda o: {"pk": o.case.pk}, IN_SCOPE_OF_ORDER, 400, 401),
    "risks-api:split-choose": (
        "post",
        lambda o: {"trade_no": o.trade_no, "sku": o.sku},
        IN_SCOPE_OF_ORDER,
        400,
        401,
    ),
    "risks-api:escalation-list": ("get", lambda o: {}, set(PERSONAS), 200, 401),
    "risks-api:escalation-detail": ("get", lambda o: {"pk": o.escalation.pk}, {"provider", "operator"}, 200, 401),
    "risks-api:escalation-assign": ("post", lambda o: {"pk": o.escalation.pk}, {"provider", "operator"}, ANY, 401),
    "risks-api:escalation-comment": ("post", lambda o: {"pk": o.escalation.pk}, {"provider", "operator"}, 400, 401),
    "risks-api:escalation-resolve": ("post", lambda o: {"pk": o.escalation.pk}, {"provider", "operator"}, ANY, 401),
    "risks-api:escalation-reject": ("post", lambda o: {"pk": o.escalation.pk}, {"provider", "operator"}, ANY, 401),
    "api-key-revoke": ("post", lambda o: {"prefix": "00000000"}, set(), 404),
    "api-schema": ("get", lambda o: {}, set(PERSONAS), 200, 200),
    "api-docs": ("get", lambda o: {}, set(PERSONAS), 200, 200),
    # A person's own password: changed when logged in, reset by email from outside.
    "password_change": ("get", lambda o: {}, set(PERSONAS), 200),
    "password_change_done": ("get", lambda o: {}, set(PERSONAS), 200),
    "password_reset": ("get", lambda o: {}, set(PERSONAS), 200, 200),
    "password_reset_done": ("get", lambda o: {}, set(PERSONAS), 200, 200),
    "password_reset_complete": ("get", lambda o: {}, set(PERSONAS), 200, 200),
    # A link that does not hold answers with the page saying so.
    "password_reset_confirm": ("get", lambda o: {"uidb64": "x", "token": "y"}, set(PERSONAS), 200, 200),
    "api:order-list": ("get", lambda o: {}, set(PERSONAS), 200, 401),
    "api:order-detail": ("get", lambda o: {"order_no": o.order_no}, IN_SCOPE_OF_ORDER, 200, 401),
    "api:worklist": ("get", lambda o: {"name": "pending-sign-in"}, PROVIDERS, 200, 401),
    "api:carrier-events": ("post", lambda o: {}, set(), 401, 401),
    # For load balancers: open to all. Beat "ran" first, so every check is green.
    # Public, for load balancers: 200, or 503 when a service it checks is slow
    # or down (on a busy test machine a cache call may pass its time-out).
    "health": ("get", lambda o: beat_ran(), set(PERSONAS), HEALTH, HEALTH),
    **{
        f"api:order-{action}": ("post", lambda o: {"order_no": o.order_no}, IN_SCOPE_OF_ORDER, ANY, 401)
        for action in API_ACTIONS
    },
}
# Served by Django itself, with their own rules: the admin, login and logout.
NOT_OURS = {"login", "logout"}


def beat_ran():
    """Record beat's heartbeat, as its periodic task does; no URL arguments."""
    from portal.health import record_heartbeat

    record_heartbeat()
    return {}


def case_and_escalation(order):
    """A live case on the order, owned by its provider, and the escalation the provider raised."""
    from django.utils import timezone

    from risks.choices import Rule, Severity
    from risks.models import Escalation, RiskCase

    now = timezone.now()
    case = RiskCase.objects.create(
        rule=Rule.PENDING_SIGN_IN,
        subject=f"order:{order.pk}",
        order=order,
        trade_no=order.trade_no,
        sku=order.sku,
        owner=order.provider,
        severity=Severity.MEDIUM,
        due_at=now,
        opened_at=now,
    )
    escalation = Escalation.objects.create(
        order=order,
        case=case,
        reason="help",
        category="sign_in",
        raised_by_organisation=order.provider,
        first_response_due_at=now,
        created_at=now,
    )
    return case, escalation


def notification_for(user):
    from django.utils import timezone

    from portal.models import Notification

    return Notification.objects.create(
        recipient=user, kind="case_opened", key="case_opened:0", link="/", created_at=timezone.now(), email_status="off"
    )


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


def answered(response, expected) -> bool:
    return response.status_code in expected if isinstance(expected, tuple) else response.status_code == expected


def import_job_of(person):
    from orders import imports
    from tests.orders.test_imports import as_csv, rows

    return imports.start(as_csv(rows(1)), "orders.csv", user=person)


def test_every_url_has_its_expectations_written_down():
    assert our_url_names() == set(EXPECTATIONS)


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
def test_url_as_every_persona(client, api, personas, keys, merchant_org, provider_org, name):
    order = advance(new_order(merchant_org, provider_org), OrderState.ARRIVED)
    order.case, order.escalation = case_and_escalation(order)
    order.notification = notification_for(personas["provider"])
    order.import_job = import_job_of(personas["merchant"])
    method, kwargs, in_scope, status, *anonymous = EXPECTATIONS[name]
    url = reverse(name, kwargs=kwargs(order))
    is_api = name.startswith(("api:", "risks-api:"))

    response = getattr(client, method)(url)
    if anonymous:
        assert answered(response, anonymous[0]), ("anonymous", url)
    else:
        assert response.status_code == 302 and response["Location"].startswith(reverse("login")), "anonymous"

    for persona in PERSONAS:
        if is_api:
            # The API is called with the organisation's key.
            key = keys["platform" if persona == "operator" else persona]
            # A stale If-Match makes every action a conflict at most: nothing changes.
            response = getattr(api.as_key(key), method)(url, {}, format="json", HTTP_IF_MATCH="0")
        else:
            client.force_login(personas[persona])
            response = getattr(client, method)(url)
        if persona not in in_scope:
            expected = 401 if status == 401 else 404
            assert response.status_code == expected, (persona, url, response.status_code)
        elif status is ANY:
            assert response.status_code != 404 and response.status_code < 500, (persona, url, response.status_code)
        else:
            assert answered(response, status), (persona, url, response.status_code)
    order.refresh_from_db()
    assert order.state == OrderState.ARRIVED, "no request in this matrix may change the order"
