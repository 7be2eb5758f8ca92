"""Worklists and order lists: scope, live counts, filters, sorting, htmx, query counts (exports:
tests/orders/test_exports.py)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders import workflow, worklists
from orders.choices import Action, AppraisalResult, OrderState
from orders.models import Order
from tests.factories import advance, new_order

S = OrderState
# The state (and result) that puts an order on each worklist.
WORKLIST_SETUP = {
    "pending-sign-in": (S.ARRIVED, AppraisalResult.PASS),
    "to-appraise": (S.SIGNED_IN, AppraisalResult.PASS),
    "to-inspect": (S.APPRAISED, AppraisalResult.PASS),
    "to-pack": (S.INSPECTED, AppraisalResult.PASS),
    "to-ship": (S.PACKED, AppraisalResult.PASS),
    "awaiting-pickup": (S.WAYBILL_PRINTED, AppraisalResult.PASS),
    "blocked": (S.SIGNED_IN, AppraisalResult.PASS),
}


def make(merchant_org, provider_org, slug, **kwargs):
    state, result = WORKLIST_SETUP[slug]
    order = advance(new_order(merchant_org, provider_org, **kwargs), state, result=result)
    if slug == "blocked":
        actor = workflow.Actor.of_organisation(provider_org)
        order = workflow.perform(order, Action.REPORT_BLOCKED, actor, stage="entry", reason="ERP rejects it")
    return order


def page(client, url, **params):
    response = client.get(url, params)
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.parametrize("slug", [w.slug for w in worklists.WORKLISTS])
def test_each_worklist_shows_its_orders_and_only_its_providers(
    client, provider, merchant_org, provider_org, provider2_org, slug
):
    mine = make(merchant_org, provider_org, slug)
    other_list = make(merchant_org, provider_org, "to-pack" if slug != "to-pack" else "to-appraise")
    not_mine = make(merchant_org, provider2_org, slug)
    client.force_login(provider)

    html = page(client, reverse("orders:worklist", args=[slug]))

    assert mine.order_no in html
    assert other_list.order_no not in html
    assert not_mine.order_no not in html


def test_tabs_show_live_counts(client, provider, merchant_org, provider_org):
    for slug, n in [("pending-sign-in", 2), ("to-appraise", 1), ("blocked", 1)]:
        for _ in range(n):
            make(merchant_org, provider_org, slug)
    client.force_login(provider)
    response = client.get(reverse("orders:worklist", args=["to-pack"]))
    counts = {tab.slug: n for tab, n in response.context["tabs"]}
    assert counts["pending-sign-in"] == 2 and counts["to-appraise"] == 2 and counts["blocked"] == 1
    assert counts["to-pack"] == 0


def test_a_not_required_order_waits_to_ship_not_to_inspect(client, provider, merchant_org, provider_org):
    order = advance(new_order(merchant_org, provider_org), S.APPRAISED, result=AppraisalResult.NOT_REQUIRED)
    client.force_login(provider)
    assert order.order_no in page(client, reverse("orders:worklist", args=["to-ship"]))
    assert order.order_no not in page(client, reverse("orders:worklist", args=["to-inspect"]))


def test_a_blocked_order_is_not_offered_to_ship(client, provider, merchant_org, provider_org):
    packed = make(merchant_org, provider_org, "to-ship")
    workflow.perform(
        packed, Action.REPORT_BLOCKED, workflow.Actor.of_organisation(provider_org), stage="packing", reason="x"
    )
    client.force_login(provider)
    assert packed.order_no not in page(client, reverse("orders:worklist", args=["to-ship"]))
    assert packed.order_no in page(client, reverse("orders:worklist", args=["blocked"]))


def test_unknown_worklist_and_other_roles_get_404(client, provider, merchant, operator):
    client.force_login(provider)
    assert client.get(reverse("orders:worklist", args=["to-dance"])).status_code == 404
    for person in (merchant, operator):
        client.force_login(person)
        assert client.get(reverse("orders:worklist", args=["to-pack"])).status_code == 404


def test_filters_by_deadline_window_age_split_group_and_merchant(
    client, provider, merchant_org, merchant2_org, provider_org
):
    soon = make(merchant_org, provider_org, "to-appraise", deadline_in=timedelta(hours=30))
    later = make(merchant_org, provider_org, "to-appraise", deadline_in=timedelta(days=9))
    split_a = make(merchant2_org, provider_org, "to-appraise", trade_no="T-SPLIT-LIST", sku="S")
    make(merchant2_org, provider_org, "to-pack", trade_no="T-SPLIT-LIST", sku="S")
    Order.objects.filter(pk=later.pk).update(state_changed_at=timezone.now() - timedelta(hours=50))
    client.force_login(provider)
    url = reverse("orders:worklist", args=["to-appraise"])

    html = page(client, url, deadline="48")
    assert soon.order_no in html and later.order_no not in html

    html = page(client, url, age="48")
    assert later.order_no in html and soon.order_no not in html

    html = page(client, url, split="yes")
    assert split_a.order_no in html and soon.order_no not in html

    html = page(client, url, merchant=merchant2_org.code)
    assert split_a.order_no in html and soon.order_no not in html and later.order_no not in html


def test_merchant_filter_offers_only_merchants_the_provider_works_for(
    client, provider, merchant_org, merchant2_org, provider_org, provider2_org
):
    make(merchant_org, provider_org, "to-appraise")
    make(merchant2_org, provider2_org, "to-appraise")
    client.force_login(provider)
    form = client.get(reverse("orders:worklist", args=["to-appraise"])).context["filter"].form
    assert [org.code for org in form.fields["merchant"].queryset] == [merchant_org.code]
    assert "provider" not in form.fields


def test_sorting_by_deadline_both_ways(client, provider, merchant_org, provider_org):
    early = make(merchant_org, provider_org, "to-appraise", deadline_in=timedelta(days=2))
    late = make(merchant_org, provider_org, "to-appraise", deadline_in=timedelta(days=6))
    client.force_login(provider)
    url = reverse("orders:worklist", args=["to-appraise"])
    html = page(client, url, sort="auto_confirm_at")
    assert html.index(early.order_no) < html.index(late.order_no)
    html = page(client, url, sort="-auto_confirm_at")
    assert html.index(late.order_no) < html.index(early.order_no)


def test_deadline_highlight_red_under_48_hours_amber_under_72(client, provider, merchant_org, provider_org):
    red = make(merchant_org, provider_org, "to-appraise", deadline_in=timedelta(hours=20))
    amber = make(merchant_org, provider_org, "to-appraise", deadline_in=timedelta(hours=60))
    calm = make(merchant_org, provider_org, "to-appraise", deadline_in=timedelta(hours=200))
    client.force_login(provider)
    table = client.get(reverse("orders:worklist", args=["to-appraise"])).context["table"]
    classes = {row.record.order_no: set(row.attrs.get("class", "").split()) for row in table.paginated_rows}
    assert "table-danger" in classes[red.order_no]
    assert "table-warning" in classes[amber.order_no]
    assert not classes[calm.order_no] & {"table-danger", "table-warning"}


def test_htmx_refresh_returns_only_the_results(client, provider, merchant_org, provider_org):
    order = make(merchant_org, provider_org, "pending-sign-in")
    client.force_login(provider)
    response = client.get(reverse("orders:worklist", args=["pending-sign-in"]), HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert order.order_no in html
    assert "<html" not in html and 'id="results"' in html
    assert 'hx-swap-oob="true"' in html  # the tab counts refresh with it


def test_search_box_goes_straight_to_a_single_match_within_scope(
    client, provider, provider2, merchant_org, provider_org
):
    order = make(merchant_org, provider_org, "awaiting-pickup")
    client.force_login(provider)
    response = client.get(reverse("orders:search"), {"q": order.waybill_no})
    assert response["Location"] == reverse("orders:detail", args=[order.order_no])
    response = client.get(reverse("orders:search"), {"q": order.inbound_tracking_no})
    assert response["Location"] == reverse("orders:detail", args=[order.order_no])
    client.force_login(provider2)
    response = client.get(reverse("orders:search"), {"q": order.waybill_no})
    assert order.order_no not in response["Location"]


LIST_PAGES = [
    *[("provider", "orders:worklist", [w.slug]) for w in worklists.WORKLISTS],
    ("provider", "orders:list", []),
    ("merchant", "orders:list", []),
    ("operator", "orders:list", []),
]


@pytest.fixture
def busy(merchant_org, merchant2_org, provider_org):
    """Twelve orders in every worklist from two merchants; before appraisal, in split groups of two."""
    for slug, (state, _) in WORKLIST_SETUP.items():
        grouped = state in (S.ARRIVED, S.SIGNED_IN)
        for i in range(12):
            merchant = merchant_org if i % 2 else merchant2_org
            trade_no = f"T-{slug}-{i % 2}-{i // 4}" if grouped else None
            make(merchant, provider_org, slug, trade_no=trade_no, sku="S", deadline_in=timedelta(hours=40))


def test_list_pages_use_the_same_few_queries_at_any_page_size(client, personas, busy, subtests):
    # One test over every list, so the busy orders are made once.
    for persona, name, args in LIST_PAGES:
        with subtests.test(persona=persona, page=name, args=args):
            client.force_login(personas[persona])
            url = reverse(name, args=args)
            counts = []
            for per_page in (10, 100):
                with CaptureQueriesContext(connection) as queries:
                    response = client.get(url, {"per_page": per_page})
                assert response.status_code == 200
                counts.append(len(queries))
            rows = len(response.context["table"].paginated_rows)
            assert rows > 10, "the second page size must show more rows than the first"
            assert counts[0] == counts[1] <= 8, counts


def test_api_worklists_use_the_same_few_queries_at_any_page_size(api, keys, busy, subtests):
    client = api.as_key(keys["provider"])
    client.get("/api/v1/orders/", {"page_size": 1})  # a key's first request records its use; the next ones do not
    for slug in [w.slug for w in worklists.WORKLISTS]:
        with subtests.test(worklist=slug):
            counts, shown = [], []
            for size in (5, 100):
                with CaptureQueriesContext(connection) as queries:
                    response = client.get(f"/api/v1/worklists/{slug}/", {"page_size": size})
                assert response.status_code == 200
                counts.append(len(queries))
                shown.append(len(response.json()["results"]))
            assert shown[0] == 5 < shown[1], shown
            assert counts[0] == counts[1] <= 4, counts


@pytest.mark.parametrize("persona", ["merchant", "operator"])
def test_order_lists_start_with_open_orders_nearest_deadline_first(
    client, personas, merchant_org, provider_org, persona
):
    later = make(merchant_org, provider_org, "to-pack", deadline_in=timedelta(days=9))
    sooner = make(merchant_org, provider_org, "to-appraise", deadline_in=timedelta(days=2))
    finished = advance(new_order(merchant_org, provider_org), S.REFUNDED)
    client.force_login(personas[persona])

    html = page(client, reverse("orders:list"))
    assert html.index(sooner.order_no) < html.index(later.order_no)
    assert finished.order_no not in html
    assert 'id="list-total">2 orders<' in html

    html = page(client, reverse("orders:list"), finished="on")
    assert finished.order_no in html and sooner.order_no in html
    assert 'id="list-total">3 orders<' in html

    # Asking for a state is asking for those orders, finished or not.
    html = page(client, reverse("orders:list"), state=S.REFUNDED)
    assert finished.order_no in html and sooner.order_no not in html


def test_the_api_lists_finished_orders_as_before(api, keys, merchant_org, provider_org):
    finished = advance(new_order(merchant_org, provider_org), S.REFUNDED)
    rows = api.as_key(keys["platform"]).get("/api/v1/orders/").json()["results"]
    assert finished.order_no in [row["order_no"] for row in rows]


def test_a_finished_order_shows_when_it_finished_not_a_growing_dwell(client, operator, merchant_org, provider_org):
    finished = advance(new_order(merchant_org, provider_org), S.REFUNDED)
    client.force_login(operator)
    table = client.get(reverse("orders:list"), {"finished": "on"}).context["table"]
    row = next(r for r in table.paginated_rows if r.record.pk == finished.pk)
    assert row.get_cell("age") == f"finished {timezone.localtime(finished.state_changed_at):%Y-%m-%d}"


def test_a_long_list_says_more_than_the_count_limit(client, operator, merchant_org, provider_org, monkeypatch):
    from orders.views import lists

    monkeypatch.setattr(lists, "COUNT_LIMIT", 2)
    for _ in range(3):
        make(merchant_org, provider_org, "to-pack")
    client.force_login(operator)
    assert 'id="list-total">More than 2 orders<' in page(client, reverse("orders:list"))


def test_the_pending_sign_in_list_shows_the_inbound_number_to_scan(client, provider, merchant_org, provider_org):
    parcel = make(merchant_org, provider_org, "pending-sign-in")
    client.force_login(provider)
    table = client.get(reverse("orders:worklist", args=["pending-sign-in"])).context["table"]
    assert [r.get_cell("inbound_tracking_no") for r in table.paginated_rows] == [parcel.inbound_tracking_no]
    assert "waybill_no" not in [c.name for c in table.columns]


def test_a_step_taken_from_a_worklist_opens_its_next_order(client, provider, merchant_org, provider_org):
    first, second = (make(merchant_org, provider_org, "to-pack", deadline_in=timedelta(days=d)) for d in (2, 3))
    client.force_login(provider)
    detail = reverse("orders:detail", args=[first.order_no]) + "?worklist=to-pack"
    assert f'href="{reverse("orders:detail", args=[second.order_no])}?worklist=to-pack"' in page(client, detail)

    response = client.post(
        reverse("orders:action", args=[first.order_no, "pack"]) + "?worklist=to-pack",
        {"pack-version": Order.objects.get(pk=first.pk).version},
    )

    assert response["Location"] == reverse("orders:detail", args=[second.order_no]) + "?worklist=to-pack"
    emptied = client.post(
        reverse("orders:action", args=[second.order_no, "pack"]) + "?worklist=to-pack",
        {"pack-version": Order.objects.get(pk=second.pk).version},
    )
    # The list is empty now: back to it.
    assert emptied["Location"] == reverse("orders:worklist", args=["to-pack"])
    assert [o.state for o in Order.objects.filter(pk__in=[first.pk, second.pk])] == [S.PACKED, S.PACKED]
