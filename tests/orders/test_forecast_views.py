"""The expected delivery on the screens: the order page's line under the
deadline, and the column of the worklists and order lists with its "Forecast
to miss" badge, in English and in Chinese.

The orders entered their state at a fixed minute, ``SINCE``, and every figure
is longer than the time since: what is left of the current stage is then its
90th percentile less the time spent, so the expected delivery is
``SINCE`` plus the 90th percentiles, whenever the test runs.
"""

import re
from datetime import timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from orders.choices import OrderState
from orders.forecast import FORECAST_STATES
from orders.models import Order, StageDuration
from risks.models import RiskSettings
from tests.factories import advance, new_order

S = OrderState
STAGE_P90 = timedelta(hours=6)
STAGE_MEDIAN = timedelta(hours=3)
# From signed in: five stages of the provider's and the journey.
LEFT_FROM_SIGN_IN = STAGE_P90 * len(FORECAST_STATES)


@pytest.fixture
def since():
    return timezone.now().replace(second=0, microsecond=0) - timedelta(hours=2)


def figures(provider=None, samples=35, at=None):
    """A figure for every forecast stage: ``provider``'s own, or all providers' (``None``)."""
    at = at or timezone.now()
    for stage in FORECAST_STATES:
        StageDuration.objects.create(
            provider=provider,
            stage=stage,
            median=STAGE_MEDIAN,
            p90=STAGE_P90,
            samples=samples,
            window=timedelta(days=30),
            computed_at=at,
        )


def signed_in(merchant_org, provider_org, since, deadline_after):
    """An order signed for at ``since`` whose deadline is ``deadline_after`` later."""
    order = advance(new_order(merchant_org, provider_org, auto_confirm_at=since + deadline_after), S.SIGNED_IN)
    Order.objects.filter(pk=order.pk).update(state_changed_at=since)
    return order


@pytest.fixture
def late(merchant_org, provider_org, since):
    """Expected 6 h after its deadline."""
    return signed_in(merchant_org, provider_org, since, LEFT_FROM_SIGN_IN - timedelta(hours=6))


@pytest.fixture
def on_time(merchant_org, provider_org, since):
    """Expected 12 h before its deadline."""
    return signed_in(merchant_org, provider_org, since, LEFT_FROM_SIGN_IN + timedelta(hours=12))


def shanghai(moment, pattern):
    return moment.astimezone(ZoneInfo("Asia/Shanghai")).strftime(pattern)


def html_of(client, url, **headers):
    response = client.get(url, **headers)
    assert response.status_code == 200
    return response.content.decode()


def expected_line(html):
    found = re.search(r'<div[^>]*id="expected-delivery".*?</div>\s*</div>', html, re.S)
    return found.group(0) if found else ""


def rows_of(html):
    """Each table row's HTML by the order number it links to."""
    rows = {}
    for row in re.findall(r"<tr\b.*?</tr>", html, re.S):
        number = re.search(r'href="/orders/([^/?"]+)/', row)
        if number:
            rows[number.group(1)] = row
    return rows


def expected_cell(row):
    """The row's expected-delivery cell (the column after the deadline)."""
    cells = re.findall(r"<td\b[^>]*>(.*?)</td>", row, re.S)
    deadline = next(i for i, cell in enumerate(cells) if "data-countdown" in cell)
    return cells[deadline + 1]


# The order page


def test_the_order_page_shows_when_an_order_is_expected_and_how_long_before_the_deadline(
    client, provider, provider_org, on_time, since
):
    figures(provider_org)
    client.force_login(provider)
    line = expected_line(html_of(client, reverse("orders:detail", args=[on_time.order_no])))
    assert 'data-forecast="on-time"' in line
    assert shanghai(since + LEFT_FROM_SIGN_IN, "%Y-%m-%d %H:%M") in line
    assert re.search(r'class="text-success"[^>]*>12h 0m before the deadline<', line)
    assert "9 in 10 of this provider&#x27;s recent orders (35) took no longer" in line
    assert "forecast to miss" not in line


def test_the_order_page_says_a_late_order_is_forecast_to_miss(client, merchant, provider_org, late, since):
    figures(provider_org)
    client.force_login(merchant)
    line = expected_line(html_of(client, reverse("orders:detail", args=[late.order_no])))
    assert 'data-forecast="late"' in line
    assert shanghai(since + LEFT_FROM_SIGN_IN, "%Y-%m-%d %H:%M") in line
    assert re.search(r'class="text-danger fw-semibold"[^>]*>6h 0m after the deadline — forecast to miss<', line)


def test_a_provider_with_too_few_orders_of_its_own_is_forecast_by_all_providers_figures(
    client, operator, provider_org, late
):
    figures(provider_org, samples=5)
    figures(None, samples=400)
    client.force_login(operator)
    line = expected_line(html_of(client, reverse("orders:detail", args=[late.order_no])))
    assert 'data-forecast="late"' in line
    assert "From all providers&#x27; figures: this provider has too few recent orders" in line
    assert "9 in 10" not in line


def test_the_administrators_minimum_of_orders_decides_whose_figures_are_used(client, provider, provider_org, late):
    figures(provider_org, samples=35)
    figures(None, samples=400)
    RiskSettings.objects.update_or_create(pk=1, defaults={"forecast_min_samples": 50})
    client.force_login(provider)
    line = expected_line(html_of(client, reverse("orders:detail", args=[late.order_no])))
    assert "From all providers&#x27; figures" in line


def test_an_order_before_sign_in_says_when_its_forecast_starts(client, merchant, merchant_org, provider_org):
    figures(provider_org)
    arrived = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    client.force_login(merchant)
    html = html_of(client, reverse("orders:detail", args=[arrived.order_no]))
    assert re.search(r'id="expected-delivery" data-forecast="none">expected delivery: forecast from sign-in on<', html)


def test_an_open_order_without_figures_says_there_are_too_few_orders(client, provider, late):
    client.force_login(provider)
    html = html_of(client, reverse("orders:detail", args=[late.order_no]))
    assert re.search(r'data-forecast="none">expected delivery: too few recent orders to forecast it yet<', html)


@pytest.mark.parametrize("state", [S.DELIVERED, S.COMPLETED, S.REFUNDED])
def test_a_delivered_or_finished_order_has_no_expected_delivery(client, merchant, merchant_org, provider_org, state):
    figures(provider_org)
    finished = advance(new_order(merchant_org, provider_org), state)
    client.force_login(merchant)
    html = html_of(client, reverse("orders:detail", args=[finished.order_no]))
    assert 'id="expected-delivery"' not in html


# The lists


def test_the_worklist_shows_expected_deliveries_and_marks_the_late_one(
    client, provider, provider_org, late, on_time, since
):
    figures(provider_org)
    client.force_login(provider)
    html = html_of(client, reverse("orders:worklist", args=["to-appraise"]))
    assert re.search(r"<th\b[^>]*>\s*Expected delivery\s*</th>", html)
    rows = rows_of(html)
    expected = shanghai(since + LEFT_FROM_SIGN_IN, "%m-%d %H:%M")
    late_cell, on_time_cell = expected_cell(rows[late.order_no]), expected_cell(rows[on_time.order_no])
    assert expected in late_cell and expected in on_time_cell
    assert re.search(r'<span class="badge text-bg-danger" data-forecast-late>Forecast to miss</span>', late_cell)
    assert "Forecast to miss" not in on_time_cell and "data-forecast-late" not in on_time_cell
    # The comparison with the deadline is there on hovering the time.
    assert "6h 0m after the deadline" in late_cell and "12h 0m before the deadline" in on_time_cell


def test_the_merchants_order_list_marks_the_late_order_and_says_why_others_have_none(
    client, merchant, merchant_org, provider_org, late, on_time
):
    figures(provider_org)
    arrived = advance(new_order(merchant_org, provider_org), S.ARRIVED)
    client.force_login(merchant)
    rows = rows_of(html_of(client, reverse("orders:list")))
    assert "Forecast to miss" in expected_cell(rows[late.order_no])
    assert "Forecast to miss" not in expected_cell(rows[on_time.order_no])
    before_sign_in = expected_cell(rows[arrived.order_no])
    assert "—" in before_sign_in and "forecast from sign-in on" in before_sign_in


def test_a_list_with_nothing_to_forecast_has_no_expected_delivery_column(client, provider, merchant_org, provider_org):
    figures(provider_org)
    advance(new_order(merchant_org, provider_org), S.ARRIVED)
    client.force_login(provider)
    html = html_of(client, reverse("orders:worklist", args=["pending-sign-in"]))
    assert "Expected delivery" not in html


def test_without_figures_the_lists_have_no_expected_delivery_column(client, provider, late):
    client.force_login(provider)
    assert "Expected delivery" not in html_of(client, reverse("orders:worklist", args=["to-appraise"]))


def figure_reads(queries):
    return [q["sql"] for q in queries if "orders_stageduration" in q["sql"]]


@pytest.mark.parametrize(
    ("persona", "name", "args"), [("provider", "orders:worklist", ["to-appraise"]), ("merchant", "orders:list", [])]
)
def test_a_list_reads_the_figures_once_whatever_the_page_size(
    client, personas, merchant_org, provider_org, since, persona, name, args
):
    figures(provider_org)
    for i in range(12):
        signed_in(merchant_org, provider_org, since, timedelta(hours=20 + 4 * i))
    client.force_login(personas[persona])
    for per_page in (10, 25):
        with CaptureQueriesContext(connection) as queries:
            html = html_of(client, reverse(name, args=args) + f"?per_page={per_page}")
        assert html.count("data-forecast-late") == 4  # deadlines 20 to 32 h after sign-in
        assert len(figure_reads(queries)) == 1


def test_a_list_with_nothing_to_forecast_does_not_read_the_figures(client, provider, merchant_org, provider_org):
    figures(provider_org)
    advance(new_order(merchant_org, provider_org), S.ARRIVED)
    client.force_login(provider)
    with CaptureQueriesContext(connection) as queries:
        html_of(client, reverse("orders:worklist", args=["pending-sign-in"]))
    assert figure_reads(queries) == []


# In Chinese: the words come from the catalogue; the structure is the same.


@pytest.fixture
def in_chinese(client, provider, merchant):
    for user in (provider, merchant):
        user.language = "zh-hans"
        user.save(update_fields=["language"])
    client.cookies["django_language"] = "zh-hans"
    return {"HTTP_ACCEPT_LANGUAGE": "zh-hans"}


def test_the_order_page_in_chinese_shows_the_forecast(client, provider, provider_org, late, on_time, since, in_chinese):
    figures(provider_org)
    client.force_login(provider)
    expected = shanghai(since + LEFT_FROM_SIGN_IN, "%Y-%m-%d %H:%M")
    late_page = html_of(client, reverse("orders:detail", args=[late.order_no]), **in_chinese)
    assert '<html lang="zh-hans">' in late_page
    line = expected_line(late_page)
    assert 'data-forecast="late"' in line and expected in line and "text-danger" in line
    line = expected_line(html_of(client, reverse("orders:detail", args=[on_time.order_no]), **in_chinese))
    assert 'data-forecast="on-time"' in line and expected in line and "text-success" in line


@pytest.mark.parametrize(
    ("persona", "name", "args"), [("provider", "orders:worklist", ["to-appraise"]), ("merchant", "orders:list", [])]
)
def test_the_lists_in_chinese_mark_the_late_order(
    client, personas, provider_org, late, on_time, since, in_chinese, persona, name, args
):
    figures(provider_org)
    client.force_login(personas[persona])
    html = html_of(client, reverse(name, args=args), **in_chinese)
    assert '<html lang="zh-hans">' in html
    rows = rows_of(html)
    expected = shanghai(since + LEFT_FROM_SIGN_IN, "%m-%d %H:%M")
    assert expected in expected_cell(rows[late.order_no]) and expected in expected_cell(rows[on_time.order_no])
    assert "data-forecast-late" in expected_cell(rows[late.order_no])
    assert "data-forecast-late" not in expected_cell(rows[on_time.order_no])
