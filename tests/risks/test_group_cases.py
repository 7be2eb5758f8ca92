"""A split group's case belongs to every order of the group: on each order's
page, in the API, in the filters, for every organisation with an order in
the group; and each organisation still sees only its own orders."""

import pytest
from django.urls import reverse

from orders.choices import AppraisalResult
from orders.choices import OrderState as S
from orders.models import Order
from risks.choices import GROUP_RULES, CaseStatus, Rule
from risks.models import RiskCase, attach_live_cases
from risks.sweep import run_sweep
from tests.factories import advance, new_order

pytestmark = pytest.mark.django_db


def group_with(rule, merchant_org, provider_org, provider2_org):
    """Orders a (first provider) and b (second provider) of one split group,
    hitting ``rule``."""
    a = new_order(merchant_org, provider_org, trade_no="T-G", sku="SKU-G")
    b = new_order(merchant_org, provider2_org, trade_no="T-G", sku="SKU-G")
    if rule == Rule.DUPLICATE_APPRAISAL_FEE:
        # Data from elsewhere can carry a second result the workflow refuses.
        a = advance(a, S.APPRAISED)
        b = advance(b, S.SIGNED_IN)
        Order.objects.filter(pk=b.pk).update(appraisal_result=AppraisalResult.FAIL)
    elif rule == Rule.DUPLICATE_LOGISTICS_FEE:
        a = advance(a, S.OUTBOUND)
        b = advance(b, S.OUTBOUND, result=AppraisalResult.NOT_REQUIRED)
    run_sweep()
    case = RiskCase.objects.live().get(rule=rule)
    assert case.order == a, "filed under the group's first order"
    return a, b, case


@pytest.fixture(params=sorted(GROUP_RULES))
def rule(request):
    return request.param


def test_a_group_case_shows_on_every_order_page_of_the_group_for_each_organisation(
    client, rule, merchant, provider, provider2, merchant_org, provider_org, provider2_org
):
    a, b, case = group_with(rule, merchant_org, provider_org, provider2_org)
    label = str(Rule(rule).label)
    for person, orders in ((merchant, [a, b]), (provider, [a]), (provider2, [b])):
        client.force_login(person)
        for order in orders:
            page = client.get(reverse("orders:detail", args=[order.order_no])).content.decode()
            assert f"#{case.pk} {label}" in page, (person.username, order.order_no)
        rows = client.get(reverse("orders:list")).context["table"].paginated_rows
        for row in rows:
            assert rule in [c.rule for c in row.record.live_cases], (person.username, row.record.order_no)


def test_the_api_lists_a_group_case_on_each_order_and_finds_it_from_each(
    api, keys, rule, merchant_org, provider_org, provider2_org
):
    a, b, case = group_with(rule, merchant_org, provider_org, provider2_org)
    for who, order in (("merchant", a), ("merchant", b), ("provider", a), ("provider2", b), ("platform", b)):
        client = api.as_key(keys[who])
        detail = client.get(f"/api/v1/orders/{order.order_no}/").json()
        assert case.pk in [c["id"] for c in detail["open_cases"]], (who, order.order_no)
        found = client.get("/api/v1/cases/", {"order": order.order_no, "rule": rule}).json()["results"]
        assert [c["id"] for c in found] == [case.pk], (who, order.order_no)
        at_risk = client.get("/api/v1/orders/", {"risk": rule}).json()["results"]
        assert order.order_no in [o["order_no"] for o in at_risk], (who, order.order_no)


def test_each_organisation_sees_the_group_case_through_its_own_order_only(
    client, api, keys, rule, provider2, merchant_org, provider_org, provider2_org
):
    a, b, case = group_with(rule, merchant_org, provider_org, provider2_org)
    # The second provider sees the case, named by its own order, never the other provider's.
    listed = api.as_key(keys["provider2"]).get("/api/v1/cases/", {"rule": rule}).json()["results"]
    assert [(c["id"], c["order"]) for c in listed] == [(case.pk, b.order_no)]
    assert api.as_key(keys["provider2"]).get("/api/v1/cases/", {"order": a.order_no}).json()["results"] == []
    assert a.order_no not in str(api.as_key(keys["provider2"]).get(f"/api/v1/orders/{b.order_no}/").json())
    client.force_login(provider2)
    page = client.get(reverse("risks:case", args=[case.pk])).content.decode()
    assert b.order_no in page and a.order_no not in page
    listing = client.get(reverse("risks:cases")).content.decode()
    assert b.order_no in listing and a.order_no not in listing


def test_an_organisation_outside_the_group_sees_nothing_of_its_case(
    client, api, keys, outsider, merchant_org, provider_org, provider2_org
):
    _a, _b, case = group_with(Rule.SPLIT_ORDER, merchant_org, provider_org, provider2_org)
    assert api.as_key(keys["outsider"]).get("/api/v1/cases/").json()["results"] == []
    assert api.as_key(keys["merchant2"]).get("/api/v1/cases/").json()["results"] == []
    client.force_login(outsider)
    assert client.get(reverse("risks:case", args=[case.pk])).status_code == 404


def test_an_order_joining_the_group_carries_its_case_at_once(api, keys, merchant_org, provider_org, provider2_org):
    _a, _b, case = group_with(Rule.SPLIT_ORDER, merchant_org, provider_org, provider2_org)
    late = new_order(merchant_org, provider2_org, trade_no="T-G", sku="SKU-G")
    detail = api.as_key(keys["provider2"]).get(f"/api/v1/orders/{late.order_no}/").json()
    assert case.pk in [c["id"] for c in detail["open_cases"]]


def test_an_offline_shipment_case_closes_when_the_order_finishes_and_keeps_the_money(
    merchant_org, provider_org, platform
):
    from orders import workflow
    from orders.choices import Action
    from portal.choices import EventSource

    order = advance(new_order(merchant_org, provider_org), S.SIGNED_IN)
    workflow.perform(
        order,
        Action.OFFLINE_SHIPMENT,
        workflow.Actor.system(EventSource.CARRIER),
        expected_version=None,
        tracking_no="YT-OFFLINE-1",
        carrier="YT",
        status="picked_up",
    )
    case = RiskCase.objects.live().get(rule=Rule.OFFLINE_SHIPMENT)
    operator = workflow.Actor.of_organisation(platform, EventSource.PLATFORM)
    workflow.perform(Order.objects.get(pk=order.pk), Action.REFUND, operator, reason="shipped offline")

    case.refresh_from_db()
    assert case.status == CaseStatus.RESOLVED
    assert case.money_at_risk == order.amount
    assert "finished" in case.events.last().note
    run_sweep()
    assert not RiskCase.objects.live().filter(rule=Rule.OFFLINE_SHIPMENT).exists()


def test_a_page_of_orders_gets_each_order_its_own_cases_and_no_neighbours(merchant_org, provider_org):
    # Three split groups, each a case: the page holds the first two; the third
    # shares its trade number with the first and its SKU with the second.
    on_page = []
    for trade_no, sku in (("T-A", "S-1"), ("T-B", "S-2"), ("T-A", "S-2")):
        pair = [new_order(merchant_org, provider_org, trade_no=trade_no, sku=sku) for _ in range(2)]
        if (trade_no, sku) != ("T-A", "S-2"):
            on_page += pair
    on_page.append(new_order(merchant_org, provider_org, trade_no="T-ALONE", sku="S-1"))
    run_sweep()
    assert RiskCase.objects.live().filter(rule=Rule.SPLIT_ORDER).count() == 3

    attach_live_cases(on_page)

    for order in on_page:
        own = RiskCase.objects.live().about(order).order_by("rule", "pk")
        assert [c.pk for c in order.live_cases] == [c.pk for c in own], order.trade_no
        assert all((c.trade_no, c.sku) == (order.trade_no, order.sku) for c in order.live_cases if c.is_group_case)
    assert [len(o.live_cases) for o in on_page] == [1, 1, 1, 1, 0]
