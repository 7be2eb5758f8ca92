"""The dashboard: every number equals the list it links to, in each person's
scope; the page costs the same few queries whatever the data; each chart
downloads as CSV; and the providers' stage durations are what a hand-made
history says they are."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.http import QueryDict
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation

from orders import carrier, durations, workflow
from orders.choices import Action, AppraisalResult, FeeKind, OrderState, ScanStatus, SplitChoice
from orders.fees import extra_charges, group_fees
from orders.filtersets import AT_RISK_BANDS
from orders.models import DuplicateFeeTally, FeeCharge, OpenOrderTally, Order, SplitGroup, StageDuration
from portal import dashboard
from portal.choices import EventSource
from risks import cases, escalations, rules
from risks.filtersets import EscalationFilterSet
from risks.models import Escalation, RiskCase, RiskSettings
from risks.sweep import run_sweep
from tests.factories import advance, new_order, platform_actor

S = OrderState
PAGE_QUERY_BUDGET = 11  # SPEC §8 allows twelve


def _age(order, hours):
    """Back-date the order's entry into its state (as if it had waited there)."""
    Order.objects.filter(pk=order.pk).update(state_changed_at=timezone.now() - timedelta(hours=hours))


def _refunded(merchant, provider, days_ago, amount):
    order = advance(new_order(merchant, provider, amount=Decimal(amount)), S.AUTO_REFUNDED)
    Order.objects.filter(pk=order.pk).update(state_changed_at=timezone.now() - timedelta(days=days_ago))
    return order


def _charged_twice(merchant, provider, trade_no, *, choice=""):
    """A split group of two orders, both picked up and delivered (two logistics
    fees), and a second appraisal fee on record as imported data would have it."""
    first = advance(new_order(merchant, provider, trade_no=trade_no, sku="S"), S.COMPLETED)
    second = new_order(merchant, provider, trade_no=trade_no, sku="S")
    second = advance(second, S.DELIVERED, result=AppraisalResult.NOT_REQUIRED)
    FeeCharge.objects.create(order=second, kind=FeeKind.APPRAISAL, amount=Decimal("30.00"), charged_at=timezone.now())
    if choice:
        SplitGroup.objects.update_or_create(trade_no=trade_no, sku="S", defaults={"choice": choice})
    return first, second


def _escalated(order, person, *, due_in_hours=4, answered_by=None, opened_days_ago=0):
    escalation = cases.escalate_order(order, workflow.Actor.of_user(person, EventSource.WEB), "Please look")
    opened = timezone.now() - timedelta(days=opened_days_ago)
    Escalation.objects.filter(pk=escalation.pk).update(
        first_response_due_at=opened + timedelta(hours=due_in_hours), created_at=opened
    )
    if answered_by is not None:
        escalations.assign_to_me(Escalation.objects.get(pk=escalation.pk), workflow.Actor.of_user(answered_by))
    return escalation


def build(merchant, merchant2, provider, provider2, operator, tag=""):
    """Orders of both merchants at both providers: at risk in every band, stuck
    past their SLA, auto-refunded on different days (one long ago), split
    groups charged twice (one whose merchant chose to bear the fees), then a
    sweep's cases and escalations in every first-response class."""
    m1, m2, p1, p2 = (merchant.organisation, merchant2.organisation, provider.organisation, provider2.organisation)
    placements = [(m1, p1), (m1, p2), (m2, p1), (m2, p2)]
    for i, hours in enumerate([-2, 6, 18, 30, 60, 100, 200]):
        m, p = placements[i % 4]
        order = new_order(m, p, deadline_in=timedelta(hours=hours), amount=Decimal(100 + i))
        advance(order, [S.AWAITING_SHIPMENT, S.ARRIVED, S.SIGNED_IN, S.PACKED][i % 4])
    # Delivered: no longer at risk, whatever its deadline.
    advance(new_order(m1, p1, deadline_in=timedelta(hours=6)), S.DELIVERED)
    # Past their state's SLA: signed in 30 h ago (24 h), awaiting shipment 50 h (48 h), packed 13 h (12 h).
    _age(advance(new_order(m1, p1), S.SIGNED_IN), 30)
    _age(new_order(m2, p2), 50)
    _age(advance(new_order(m1, p2), S.PACKED), 13)
    _age(advance(new_order(m2, p1), S.APPRAISED), 5)  # within its SLA
    refunds = zip([0, 2, 2, 5, 40], placements + placements[:1], ["500", "700", "900", "1100", "1300"], strict=True)
    for days_ago, (m, p), amount in refunds:
        _refunded(m, p, days_ago, amount)
    _charged_twice(m1, p1, f"T-DUP-1{tag}")
    _charged_twice(m2, p2, f"T-DUP-2{tag}")
    _charged_twice(m1, p2, f"T-KEEP{tag}", choice=SplitChoice.KEEP_NOT_REQUIRED)
    run_sweep()
    open_order = new_order(m1, p1)
    _escalated(open_order, merchant)
    _escalated(open_order, provider, due_in_hours=-1)
    _escalated(new_order(m2, p2), merchant2, answered_by=operator)
    _escalated(new_order(m1, p2), merchant, due_in_hours=-1, answered_by=operator)
    _escalated(new_order(m1, p1), merchant, answered_by=operator, opened_days_ago=40)
    # What beat counts every minute for the charts, counted now.
    dashboard.refresh_tallies()


@pytest.fixture
def story(merchant, merchant2, provider, provider2, operator):
    build(merchant, merchant2, provider, provider2, operator)


def board_of(user):
    return dashboard.Board(user)


class Lists:
    """The lists the charts link to, opened as one person, each once: the
    order and case lists as pages, the escalation queue through its filters
    in the person's scope."""

    def __init__(self, client, user):
        self.client, self.user, self.seen = client, user, {}
        client.force_login(user)

    def rows(self, link):
        if link not in self.seen:
            path, _, query = link.partition("?")
            if path == reverse("risks:escalations"):
                request = RequestFactory().get(link)
                request.user = self.user
                visible = Escalation.objects.visible_to(self.user)
                filterset = EscalationFilterSet(QueryDict(query), visible, request=request)
                assert filterset.is_valid(), (link, filterset.errors)
                self.seen[link] = filterset.qs
            else:
                response = self.client.get(link)
                assert response.status_code == 200, link
                self.seen[link] = response.context["table"].data.data
        return self.seen[link]

    def money(self, link, series_key):
        rows = self.rows(link)
        if rows.model is RiskCase:
            return rows.aggregate(m=Sum("money_at_risk"))["m"] or 0
        if series_key == "fee_money":
            # The duplicate fees of the listed orders, as the split group's ledger counts them.
            visible = Order.objects.visible_to(self.user)
            groups = {(o.trade_no, o.sku) for o in rows}
            return sum((group_fees(t, s, orders=visible).overcharged for t, s in groups), Decimal(0))
        return rows.aggregate(m=Sum("amount"))["m"] or 0


def check_against_lists(lists, chart) -> int:
    """Every count and amount of ``chart`` equals the list behind it; returns how many were checked."""
    checked = 0
    for series in chart.series:
        if series.kind not in (dashboard.COUNT, dashboard.MONEY):
            continue
        for index, link in enumerate(series.links):
            if link is None:
                continue
            if series.kind == dashboard.COUNT:
                assert lists.rows(link).count() == series.values[index], (chart.slug, series.key, link)
            else:
                assert lists.money(link, series.key) == series.values[index], (chart.slug, series.key, link)
            checked += 1
    return checked


@pytest.mark.parametrize("persona", ["operator", "merchant", "provider"])
def test_every_number_of_every_chart_equals_the_list_it_links_to(client, personas, story, persona):
    user = personas[persona]
    board = board_of(user)
    lists = Lists(client, user)
    for slug, make in dashboard.CHARTS.items():
        chart = make(board)
        assert check_against_lists(lists, chart) > 0, slug
        # A number without a link is a zero (or a figure that is not a count of a list).
        for series in chart.series:
            if series.kind == dashboard.COUNT:
                for value, link in zip(series.values, series.links, strict=True):
                    assert link is not None or not value, (slug, series.key)


def test_the_story_gives_every_chart_something_to_show(story, operator):
    board = board_of(operator)
    charts = {slug: make(board) for slug, make in dashboard.CHARTS.items()}
    totals = {slug: {s.key: s.values for s in chart.series} for slug, chart in charts.items()}
    at_risk = dict(zip([code for code, *_ in AT_RISK_BANDS], totals["money-at-risk"]["orders"], strict=True))
    assert all(at_risk.values()), at_risk
    assert sum(totals["stuck"]["over"][i] or 0 for i in range(10)) >= 3
    # Four auto-refunds in the window (the one 40 days ago is not), on three days.
    assert sum(totals["losses"]["refunds"]) == 4 and len([n for n in totals["losses"]["refunds"] if n]) == 3
    assert sum(totals["losses"]["refund_money"]) == Decimal("3200")
    # Three groups charged a second appraisal fee each, and a second logistics fee (provider
    # one's 12, provider two's 15) for the two whose merchant did not choose to bear them.
    assert sum(totals["losses"]["fee_money"]) == 3 * Decimal("30.00") + Decimal("12.00") + Decimal("15.00")
    assert totals["escalations"]["escalations"] == [1, 1, 1, 1]
    assert sum(totals["cases"]["cases"]) == RiskCase.objects.live().count() > 0


def test_a_merchant_sees_only_its_own_numbers(client, story, merchant, merchant2_org):
    board = board_of(merchant)
    losses = {s.key: s.values for s in dashboard.losses_by_day(board).series}
    mine = Order.objects.visible_to(merchant)
    assert sum(losses["refund_money"]) == Decimal("500") + Decimal("700")  # not merchant two's 900 and 1100
    assert sum(losses["fee_money"]) == 2 * Decimal("30.00") + Decimal("12.00")
    risk = {s.key: s.values for s in dashboard.money_at_risk(board).series}
    assert sum(risk["money"]) == sum(
        mine.filter(state__in=[str(s) for s in S if s != S.DELIVERED]).open().values_list("amount", flat=True)
    )
    cases_chart = {s.key: s.values for s in dashboard.cases_by_rule(board).series}
    assert sum(cases_chart["cases"]) == RiskCase.objects.visible_to(merchant).live().count()
    assert sum(cases_chart["cases"]) < RiskCase.objects.live().count()
    scorecard = dashboard.scorecard(board)
    assert sum({s.key: s.values for s in scorecard.series}["open"]) == mine.open().count()

    client.force_login(merchant)
    text = client.get(reverse("dashboard-csv", args=["losses"])).content.decode("utf-8-sig")
    assert "900.00" not in text and "1100.00" not in text and "500.00" in text
    page = client.get(reverse("dashboard")).content.decode()
    assert merchant2_org.name not in page


def test_a_provider_sees_its_own_scorecard_only(story, provider, provider2_org):
    chart = dashboard.scorecard(board_of(provider))
    assert chart.labels == [provider.organisation.name]
    assert provider2_org.name not in chart.labels


@pytest.mark.parametrize("persona", ["operator", "merchant", "provider"])
def test_the_page_costs_the_same_few_queries_however_much_data(client, personas, persona):
    user = personas[persona]
    client.force_login(user)
    args = [personas[name] for name in ("merchant", "merchant2", "provider", "provider2", "operator")]
    counts = []
    for tag in ("", "-more"):
        build(*args, tag=tag)
        with CaptureQueriesContext(connection) as queries:
            response = client.get(reverse("dashboard"))
        assert response.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1] <= PAGE_QUERY_BUDGET, counts


def test_the_operator_home_is_the_platforms_dashboard(client, story, operator, merchant):
    client.force_login(operator)
    page = client.get(reverse("operator-home")).content.decode()
    for slug in dashboard.CHARTS:
        assert f'id="chart-{slug}-data"' in page and reverse("dashboard-csv", args=[slug]) in page
    client.force_login(merchant)
    assert client.get(reverse("operator-home")).status_code == 404
    assert client.get(reverse("dashboard")).status_code == 200


def test_each_chart_downloads_as_csv_in_the_persons_language(client, story, merchant):
    merchant.language = "zh-hans"
    merchant.save(update_fields=["language"])
    client.force_login(merchant)
    for slug, make in dashboard.CHARTS.items():
        response = client.get(reverse("dashboard-csv", args=[slug]))
        assert response.status_code == 200
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert f'filename="{slug}.csv"' in response["Content-Disposition"]
        assert response.content.startswith("\ufeff".encode())
        rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
        with translation.override("zh-hans"):
            chart = make(board_of(merchant))
            assert rows[0] == chart.csv_header()
        assert rows[1:] == [[str(cell) for cell in row] for row in chart.csv_rows()]
    stuck = list(
        csv.reader(io.StringIO(client.get(reverse("dashboard-csv", args=["stuck"])).content.decode("utf-8-sig")))
    )
    assert stuck[0][0] == "状态"  # "State", as the merchant reads it
    assert len(stuck) == 1 + 10  # every open state


def test_csv_numbers_are_plain_and_a_formula_is_written_as_text(client, story, operator, provider_org):
    provider_org.name = "=HYPERLINK(1)"
    provider_org.save(update_fields=["name"])
    client.force_login(operator)
    rows = list(
        csv.reader(io.StringIO(client.get(reverse("dashboard-csv", args=["providers"])).content.decode("utf-8-sig")))
    )
    assert [row[0] for row in rows if row[0].endswith("HYPERLINK(1)")] == ["'=HYPERLINK(1)"]
    money_column = rows[0].index("Auto-refunded (CNY)")
    assert all(row[money_column].replace(".", "").isdigit() for row in rows[1:])


def test_an_unknown_chart_has_no_csv_and_people_without_an_organisation_no_dashboard(client, operator, db):
    from tests.factories import UserFactory

    client.force_login(operator)
    assert client.get(reverse("dashboard-csv", args=["nothing"])).status_code == 404
    admin = UserFactory(username="root", organisation=None, is_superuser=True, is_staff=True)
    client.force_login(admin)
    assert client.get(reverse("dashboard")).status_code == 404


def test_a_list_link_shows_its_filter_in_the_form_and_others_stay_hidden(client, story, operator):
    client.force_login(operator)
    plain = client.get(reverse("orders:list")).context["filter"].form.fields
    assert "at_risk" not in plain and "over_sla" not in plain
    linked = client.get(reverse("orders:list"), {"at_risk": "12"}).context["filter"].form.fields
    assert "at_risk" in linked and "over_sla" not in linked


# --- what the charts share with the rules and the ledger ------------------------


def test_the_stalled_rule_and_the_over_sla_filter_agree(client, story, operator):
    cfg = RiskSettings.current()
    stalled = {hit.order_id for hit in rules.stalled(rules.Context.build(timezone.now(), cfg))}
    client.force_login(operator)
    listed = client.get(reverse("orders:list"), {"over_sla": "yes", "per_page": 100}).context["table"].data.data
    assert stalled and set(listed.values_list("pk", flat=True)) == stalled


def test_extra_charges_are_what_each_groups_ledger_says_was_overcharged(story, merchant):
    for scope in (None, Order.objects.visible_to(merchant)):
        extra = extra_charges(scope).aggregate(m=Sum("amount"))["m"]
        groups = FeeCharge.objects.order_by().values_list("order__trade_no", "order__sku").distinct()
        ledger = sum((group_fees(t, s, orders=scope).overcharged for t, s in groups), Decimal(0))
        assert extra == ledger > 0


def test_each_deadline_band_holds_the_orders_with_that_much_time_left(client, operator, merchant_org, provider_org):
    hours = {"past": -1, "12": 11, "24": 13, "48": 47, "72": 49, "later": 73}
    made = {band: new_order(merchant_org, provider_org, deadline_in=timedelta(hours=h)) for band, h in hours.items()}
    advance(new_order(merchant_org, provider_org, deadline_in=timedelta(hours=11)), S.DELIVERED)
    client.force_login(operator)
    for band, order in made.items():
        listed = client.get(reverse("orders:list"), {"at_risk": band}).context["table"].data.data
        assert list(listed.values_list("pk", flat=True)) == [order.pk], band


# --- stage durations ---------------------------------------------------------


# The moment the hand-made history is counted back from.
BASE = timezone.now().replace(microsecond=0)


def _walk(order, provider, steps):
    """Take ``order`` through ``steps`` ((action, hours before ``BASE``, parameters)), as its provider
    or the platform."""
    actor = workflow.Actor.of_organisation(provider, EventSource.WEB)
    for action, hours_ago, params in steps:
        when = BASE - timedelta(hours=hours_ago)
        if action == Action.SHIP:
            merchant = workflow.Actor.of_organisation(order.merchant, EventSource.WEB)
            order = workflow.perform(
                order, action, merchant, occurred_at=when, carrier="SF", tracking_no=f"SF{order.pk:08d}"
            )
        elif action == Action.CARRIER_PICKUP:
            carrier.record_scan(
                carrier="SF", tracking_no=order.waybill_no, status=ScanStatus.PICKED_UP, occurred_at=when
            )
            order.refresh_from_db()
        elif action in (Action.REFUND, Action.UNBLOCK):
            order = workflow.perform(order, action, platform_actor(), occurred_at=when, **params)
        else:
            order = workflow.perform(order, action, actor, occurred_at=when, **params)
    return order


def _signed_in(merchant, provider, at_hours_ago):
    order = new_order(merchant, provider, paid_at=BASE - timedelta(hours=at_hours_ago + 2))
    return _walk(order, provider, [(Action.SHIP, at_hours_ago + 1, {}), (Action.SIGN_IN, at_hours_ago, {})])


PASS = {"result": AppraisalResult.PASS}


@pytest.fixture
def history(merchant_org, provider_org, provider2_org, platform):
    """Stage times made by hand: provider one signed in five parcels and
    appraised them 1, 2, 3, 4 and 10 hours later (the 2-hour one reported
    blocked and unblocked meanwhile, which does not end the stage), two of
    them inspected 1 and 3 hours after that, and one picked up; provider two
    appraised one after 5 hours. Not counted: a parcel refunded while signed
    in, and a stage finished 40 days ago, outside the window."""
    for hours, inspect_after in [(1, 1), (2, None), (3, 3), (4, None), (10, None)]:
        order = _signed_in(merchant_org, provider_org, 100)
        steps = []
        if hours == 2:
            blocked = {"stage": "entry", "reason": "ERP down"}
            steps += [(Action.REPORT_BLOCKED, 99.5, blocked), (Action.UNBLOCK, 99.2, {"note": "fixed"})]
        steps.append((Action.APPRAISE, 100 - hours, PASS))
        if inspect_after:
            steps.append((Action.INSPECT, 100 - hours - inspect_after, {}))
        order = _walk(order, provider_org, steps)
        if hours == 1:
            _walk(
                order,
                provider_org,
                [(Action.PACK, 95, {}), (Action.PRINT_WAYBILL, 94, {}), (Action.CARRIER_PICKUP, 90, {})],
            )
    other = _signed_in(merchant_org, provider2_org, 50)
    _walk(other, provider2_org, [(Action.APPRAISE, 45, PASS)])
    refunded = _signed_in(merchant_org, provider2_org, 20)
    _walk(refunded, provider2_org, [(Action.REFUND, 19, {"reason": "buyer refunded"})])
    old = _signed_in(merchant_org, provider2_org, 41 * 24)
    _walk(old, provider2_org, [(Action.APPRAISE, 40 * 24, PASS)])


def test_stage_durations_are_the_median_and_90th_percentile_of_each_providers_stages(
    history, provider_org, provider2_org
):
    now = timezone.now()
    # Six provider stages, and five over all providers.
    assert durations.refresh(now) == 11
    rows = StageDuration.objects.filter(provider__isnull=False)
    found = {(row.provider_id, row.stage): (row.median, row.p90, row.samples) for row in rows}
    h = lambda hours: timedelta(hours=hours)  # noqa: E731
    # Provider two's parcel refunded while signed in, and its stage finished
    # 40 days ago, add no sample: one, of 5 hours.
    assert found == {
        (provider_org.pk, S.SIGNED_IN): (h(3), h(7.6), 5),
        (provider_org.pk, S.APPRAISED): (h(2), h(2.8), 2),
        (provider_org.pk, S.INSPECTED): (h(3), h(3), 1),
        (provider_org.pk, S.PACKED): (h(1), h(1), 1),
        (provider_org.pk, S.WAYBILL_PRINTED): (h(4), h(4), 1),
        (provider2_org.pk, S.SIGNED_IN): (h(5), h(5), 1),
    }
    row = StageDuration.objects.get(provider=provider_org, stage=S.SIGNED_IN)
    assert row.window == durations.WINDOW and row.computed_at == now
    # Over all providers: the six signed-in samples (1, 2, 3, 4, 5, 10 h).
    pooled = StageDuration.objects.get(provider=None, carrier="", stage=S.SIGNED_IN)
    assert (pooled.median, pooled.p90, pooled.samples) == (h(3.5), h(7.5), 6)


def test_a_second_refresh_replaces_the_figures(history, provider_org):
    durations.refresh()
    first = set(StageDuration.objects.values_list("provider_id", "carrier", "stage", "median", "p90", "samples"))
    durations.refresh()
    assert (
        set(StageDuration.objects.values_list("provider_id", "carrier", "stage", "median", "p90", "samples")) == first
    )
    assert StageDuration.objects.count() == len(first)


def test_the_python_figures_match_postgresqls(postgres, history):
    now = timezone.now()
    durations.refresh(now)
    in_sql = set(StageDuration.objects.values_list("provider_id", "carrier", "stage", "median", "p90", "samples"))
    in_python = {
        (row.provider_id, row.carrier, row.stage, row.median, row.p90, row.samples)
        for row in durations._in_python(durations.samples(now), now, durations.WINDOW)
    }
    assert in_sql == in_python


def test_the_scorecard_shows_the_stage_durations(history, operator, provider_org):
    durations.refresh()
    chart = dashboard.scorecard(board_of(operator))
    medians = {s.key: s for s in chart.series}["signed_in_median"]
    row = chart.labels.index(provider_org.name)
    assert medians.values[row] == timedelta(hours=3) and medians.display(row) == "3h 0m"
    assert {s.key: s for s in chart.series}["signed_in_p90"].display(row) == "7h 36m"


def test_the_refresh_task_fills_the_table(history):
    from orders.tasks import refresh_stage_durations

    assert refresh_stage_durations() == StageDuration.objects.count() > 0


# --- what the charts read from the tallies, and the scope of cases ------------


def _mixed_groups(m1, m2, p1, p2):
    """Two split groups as data from before a trade was tied to one merchant
    could hold them: one whose orders belong to two merchants at one provider,
    one of one merchant at two providers; each charged two appraisal fees at
    the same moment (the first by id is the one due)."""
    now = timezone.now()
    for trade_no, second_merchant, second_provider in [("T-MIX-M", m2, p1), ("T-MIX-P", m1, p2)]:
        first = advance(new_order(m1, p1, trade_no=trade_no, sku="S"), S.SIGNED_IN)
        second = advance(new_order(m1, p1, trade_no=trade_no, sku="S"), S.SIGNED_IN)
        Order.objects.filter(pk=second.pk).update(merchant=second_merchant, provider=second_provider)
        for order in (first, second):
            FeeCharge.objects.create(order=order, kind=FeeKind.APPRAISAL, amount=Decimal("30.00"), charged_at=now)


@pytest.fixture
def mixed(story, merchant_org, merchant2_org, provider_org, provider2_org):
    _mixed_groups(merchant_org, merchant2_org, provider_org, provider2_org)
    run_sweep()
    dashboard.refresh_tallies()


def _per_day(charges) -> dict:
    rows = charges.annotate(day=TruncDate("charged_at")).values("day")
    return {
        row["day"]: (row["n"], row["money"])
        for row in rows.annotate(n=Count("order_id", distinct=True), money=Sum("amount")).order_by()
    }


@pytest.mark.parametrize("persona", ["operator", "merchant", "merchant2", "provider", "provider2"])
def test_the_duplicate_fee_tally_is_extra_charges_in_each_scope(personas, mixed, persona):
    user = personas[persona]
    board = board_of(user)
    scope = None if persona == "operator" else Order.objects.visible_to(user)
    expected = _per_day(extra_charges(scope, since=board.since))
    tallied = {day: (row["n"], row["money"]) for day, row in board.fee_rows.items()}
    assert tallied == expected and expected


def test_a_group_of_two_merchants_or_two_providers_is_charged_twice_only_where_both_are_seen(
    personas, story, merchant_org, merchant2_org, provider_org, provider2_org
):
    people = ("operator", "merchant", "merchant2", "provider", "provider2")

    def today():
        rows = {p: board_of(personas[p]).fee_rows for p in people}
        return {p: rows[p].get(timezone.localdate(), {}).get("money", Decimal(0)) for p in people}

    before = today()
    _mixed_groups(merchant_org, merchant2_org, provider_org, provider2_org)
    dashboard.refresh_tallies()
    after = today()
    # The platform sees both groups charged twice; merchant one only the group
    # at two providers, provider one only the group of two merchants; the
    # other two were each charged once in their own scope.
    added = {p: after[p] - before[p] for p in people}
    assert added == {
        "operator": Decimal("60.00"),
        "merchant": Decimal("30.00"),
        "merchant2": Decimal(0),
        "provider": Decimal("30.00"),
        "provider2": Decimal(0),
    }


def test_the_charts_read_the_tally_as_last_counted_and_say_when(client, story, operator, merchant_org, provider_org):
    def charts():
        with translation.override("en"):
            return {slug: make(board_of(operator)) for slug, make in dashboard.CHARTS.items()}

    before = charts()
    new_order(merchant_org, provider_org, deadline_in=timedelta(hours=6))
    unchanged = charts()
    counted = timezone.localtime(OpenOrderTally.objects.first().computed_at).strftime("%H:%M")
    for slug in ("money-at-risk", "stuck"):
        assert before[slug].series[0].values == unchanged[slug].series[0].values, slug
        assert before[slug].note == f"As of {counted}.", slug
    assert "Open orders as of " in before["providers"].note
    assert before["losses"].note.startswith("Duplicate fees as of ")

    dashboard.refresh_tallies()
    after = {s.key: s.values for s in charts()["money-at-risk"].series}
    was = {s.key: s.values for s in before["money-at-risk"].series}
    assert sum(after["orders"]) == sum(was["orders"]) + 1
    client.force_login(operator)
    page = client.get(reverse("dashboard")).content.decode()
    with translation.override(operator.language):
        note = dashboard.stuck_by_state(board_of(operator)).note
    assert note and note in page


def test_a_tally_of_another_day_shows_its_date(story, operator):
    yesterday = timezone.now() - timedelta(days=1)
    OpenOrderTally.objects.update(computed_at=yesterday)
    with translation.override("en"):
        note = dashboard.stuck_by_state(board_of(operator)).note
    assert timezone.localtime(yesterday).strftime("%Y-%m-%d %H:%M") in note


def test_without_a_tally_the_charts_show_nothing_open_and_no_time(operator, merchant_org, provider_org):
    new_order(merchant_org, provider_org)
    chart = dashboard.stuck_by_state(board_of(operator))
    assert not any(chart.series[0].values) and chart.note == ""


def test_the_refresh_task_counts_both_tallies(story):
    from portal.tasks import refresh_dashboard_tallies

    OpenOrderTally.objects.all().delete()
    DuplicateFeeTally.objects.all().delete()
    rows = refresh_dashboard_tallies()
    assert rows == {"open": OpenOrderTally.objects.count(), "fees": DuplicateFeeTally.objects.count()}
    assert rows["open"] > 0 and rows["fees"] > 0


@pytest.mark.parametrize("persona", ["merchant", "merchant2", "provider", "provider2", "outsider"])
def test_a_case_is_seen_with_its_order_or_with_any_order_of_its_group(personas, mixed, persona):
    user = personas[persona]
    mine = set(Order.objects.visible_to(user).values_list("pk", flat=True))
    groups = set(Order.objects.filter(pk__in=mine).values_list("trade_no", "sku"))
    expected = {
        case.pk
        for case in RiskCase.objects.all()
        if case.order_id in mine or (case.is_group_case and (case.trade_no, case.sku) in groups)
    }
    assert set(RiskCase.objects.visible_to(user).values_list("pk", flat=True)) == expected
    if persona != "outsider":
        assert expected
    # Among them, a group case filed under another organisation's order.
    if persona in ("merchant2", "provider2"):
        assert RiskCase.objects.visible_to(user).exclude(order__in=mine).exists()
