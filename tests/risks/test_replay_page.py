"""The platform's Replay page, drawn from a kept run (``ReplayRun.report``
written by hand here): the period, the thresholds tried, the headline, the
lead time per rule, the losses in words, and their download."""

import datetime
import html
import json
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from risks.choices import Rule
from risks.models import RiskSettings
from tests.downloads import csv_rows, sheet_rows
from tests.factories import replay_run

SHANGHAI = datetime.timezone(datetime.timedelta(hours=8))


def shanghai(*args):
    return datetime.datetime(*args, tzinfo=SHANGHAI)


def rule_row(rule, opened=0, false_alarms=0, caught_first=0, median=None, least=None):
    return {
        "rule": str(rule),
        "opened": opened,
        "false_alarms": false_alarms,
        "caught_first": caught_first,
        "median_lead_hours": median,
        "least_lead_hours": least,
    }


def loss(order_no, outcome, deadline, money, caught_at=None, rule="", lead=None, without="", lead_without=None):
    return {
        "order": 1,
        "order_no": order_no,
        "outcome": outcome,
        "deadline": deadline.isoformat(),
        "money": money,
        "caught_at": caught_at.isoformat() if caught_at else None,
        "rule": str(rule),
        "lead_hours": lead,
        "rule_without_forecast": str(without),
        "lead_hours_without_forecast": lead_without,
    }


DEADLINE = shanghai(2026, 11, 20, 18, 0)
REPORT = {
    "rules": [rule_row(rule) for rule in Rule if rule not in (Rule.FORECAST_MISS, Rule.SPLIT_ORDER, Rule.STALLED)]
    + [
        rule_row(Rule.FORECAST_MISS, opened=7, false_alarms=3, caught_first=2, median=60.0, least=30.5),
        rule_row(Rule.SPLIT_ORDER, opened=2, caught_first=1, median=95.0, least=95.0),
        rule_row(Rule.STALLED, opened=4, false_alarms=4),
    ],
    "losses": [
        # The forecast caught it 89.5 hours before; without it, stalled 10 hours before.
        loss(
            "R-001",
            "auto_refund",
            DEADLINE,
            "1234.50",
            caught_at=DEADLINE - datetime.timedelta(hours=89.5),
            rule=Rule.FORECAST_MISS,
            lead=89.5,
            without=Rule.STALLED,
            lead_without=10.0,
        ),
        # Caught only by the forecast, 30.5 hours before.
        loss(
            "R-002",
            "auto_refund",
            DEADLINE,
            "500.00",
            caught_at=DEADLINE - datetime.timedelta(hours=30.5),
            rule=Rule.FORECAST_MISS,
            lead=30.5,
        ),
        loss(
            "R-003",
            "duplicate_fee",
            DEADLINE + datetime.timedelta(days=1),
            "30.00",
            caught_at=DEADLINE - datetime.timedelta(hours=71),
            rule=Rule.SPLIT_ORDER,
            lead=95.0,
            without=Rule.SPLIT_ORDER,
            lead_without=95.0,
        ),
        loss("R-004", "auto_refund", DEADLINE + datetime.timedelta(days=2), "99.90"),
    ],
    "headline": {"losses": 4, "caught": 3, "share_24h": 0.75, "share_24h_without_forecast": 0.25},
}


@pytest.fixture
def run(db):
    return replay_run(
        REPORT,
        period_start=shanghai(2026, 11, 1),
        period_end=shanghai(2026, 12, 1),
        thresholds={"sla_signed_in_hours": 12, "forecast_min_samples": 10},
        orders=1520,
        hours=720,
        seconds=83.0,
    )


def page_of(client, user, url=None):
    client.force_login(user)
    response = client.get(url or reverse("risks:replays"))
    assert response.status_code == 200
    return response.content.decode()


def text_of(page: str) -> str:
    """What a person reads: the text without tags, spaces run together."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_an_operator_sees_the_latest_replay(client, operator, run):
    page = page_of(client, operator)
    text = text_of(page)
    assert "2026-11-01 – 2026-11-30" in text
    assert "Orders replayed 1520 Hours replayed 720 Took 1m 23s" in text
    # The thresholds tried, by their names, in hours where they are hours.
    assert "SLA signed in (provider) 12 hours 24 hours" in text
    assert "Forecast: orders a provider's stage needs before its own figure is used 10 20" in text
    # The headline, in words.
    assert "3 of 4 losses (75 %)" in text
    assert "Caught at least 24 h before the deadline 3 of 4 losses (75 %)" in text
    assert "The same without the rule “Forecast to miss the deadline” 1 of 4 losses (25 %)" in text
    assert "¥1,864.40 lost" in text


def test_the_losses_are_in_words_with_their_orders_linked(client, operator, run):
    page = page_of(client, operator)
    rows = re.findall(r"<tr[^>]*>(.*?)</tr>", page.split('id="losses"')[1].split("</table>")[0], flags=re.S)[1:]
    assert len(rows) == 4
    assert f'href="{reverse("orders:detail", args=["R-001"])}"' in rows[0]
    assert (
        "R-001 Auto-refunded 2026-11-20 18:00 ¥1,234.50 2026-11-17 00:30 Forecast to miss the deadline 89.5 "
        "Stalled 10.0" in text_of(rows[0])
    )
    assert "Forecast to miss the deadline 30.5 Not caught —" in text_of(rows[1])
    assert "Duplicate fee" in text_of(rows[2]) and "Split orders 95.0 Split orders 95.0" in text_of(rows[2])
    assert text_of(rows[3]) == "R-004 Auto-refunded 2026-11-22 18:00 ¥99.90 — Not caught — Not caught —"


def test_no_code_reaches_the_page(client, operator, run):
    text = text_of(page_of(client, operator))
    for code in [*Rule.values, "auto_refund", "duplicate_fee", "sla_signed_in_hours"]:
        assert code not in text, code


def test_the_chart_plots_the_median_lead_per_rule_and_tabulates_the_counts(client, operator, run):
    page = page_of(client, operator)
    data = json.loads(re.search(r'<script id="chart-replay-lead-data"[^>]*>(.*?)</script>', page, re.S)[1])
    assert data["shape"] == "hbar"
    assert data["labels"] == [str(Rule(row["rule"]).label) for row in REPORT["rules"]]
    medians = dict(zip(data["labels"], data["datasets"][0]["data"], strict=True))
    assert medians[str(Rule.FORECAST_MISS.label)] == 60.0
    assert medians[str(Rule.SPLIT_ORDER.label)] == 95.0
    assert medians[str(Rule.STALLED.label)] is None
    numbers = text_of(page.split('id="chart-replay-lead-numbers"')[1].split("</table>")[0])
    # Median, shortest lead, losses caught first, cases opened, false alarms.
    assert "Forecast to miss the deadline 2d 12h 1d 6h 2 7 3" in numbers
    assert "Stalled — — 0 4 4" in numbers
    assert f'href="{reverse("risks:replay-rules", args=[run.pk])}"' in page


def test_the_rules_download_has_the_charts_numbers(client, operator, run):
    client.force_login(operator)
    rows = csv_rows(client.get(reverse("risks:replay-rules", args=[run.pk])))
    assert rows[0] == [
        "Rule",
        "Median lead (hours)",
        "Shortest lead (hours)",
        "Losses caught first",
        "Cases opened",
        "False alarms",
    ]
    assert [str(Rule.FORECAST_MISS.label), "60.00", "30.50", "2", "7", "3"] in rows


def test_the_losses_download_in_words(client, operator, run):
    client.force_login(operator)
    rows = csv_rows(client.get(reverse("risks:replay", args=[run.pk]) + "?export=csv"))
    assert rows[0] == [
        "Order",
        "Outcome",
        "Deadline",
        "Amount (CNY)",
        "First caught at",
        "By rule",
        "Hours before the deadline",
        "By rule, without the forecast rule",
        "Hours before the deadline, without the forecast rule",
    ]
    assert rows[1] == [
        "R-001",
        "Auto-refunded",
        "2026-11-20 18:00:00",
        "1234.50",
        "2026-11-17 00:30:00",
        "Forecast to miss the deadline",
        "89.5",
        "Stalled",
        "10.0",
    ]
    assert rows[4] == ["R-004", "Auto-refunded", "2026-11-22 18:00:00", "99.90", "", "Not caught", "", "Not caught", ""]
    sheet = sheet_rows(client.get(reverse("risks:replay", args=[run.pk]) + "?export=xlsx"))
    assert sheet[3][:4] == ["R-003", "Duplicate fee", datetime.datetime(2026, 11, 21, 18, 0), Decimal("30.00")]


def test_the_download_is_in_the_readers_language(client, operator, run):
    operator.language = "zh-hans"
    operator.save(update_fields=["language"])
    client.force_login(operator)
    rows = csv_rows(client.get(reverse("risks:replay", args=[run.pk]) + "?export=csv"))
    # "Order" is in the catalogue: the heading follows the reader.
    assert rows[0][0] == "订单"


def test_an_earlier_replay_has_its_own_page_and_is_listed(client, operator, run):
    later = replay_run(period_start=shanghai(2026, 12, 1), period_end=shanghai(2026, 12, 8, 6, 0))
    latest = text_of(page_of(client, operator))
    assert "2026-12-01 – 2026-12-08 06:00" in latest and "Recent replays" in latest
    assert "An earlier replay" not in latest
    earlier = page_of(client, operator, reverse("risks:replay", args=[run.pk]))
    assert "An earlier replay" in earlier and "3 of 4 losses (75 %)" in text_of(earlier)
    assert f'href="{reverse("risks:replay", args=[later.pk])}"' in earlier
    assert re.search(rf'href="{reverse("risks:replay", args=[run.pk])}" aria-current="page"', earlier)


def test_a_replay_that_found_nothing_says_so(client, operator, db):
    replay_run()
    text = text_of(page_of(client, operator))
    assert "No order ended as a loss in this period." in text
    assert "None: the thresholds in force were used." in text


def test_with_no_replay_the_page_says_how_to_run_one(client, operator, db):
    page = page_of(client, operator)
    assert "No replay yet" in page
    assert "python manage.py replay --from 2026-11-01 --to 2026-11-30 [--settings thresholds.toml]" in page
    assert "Asia/Shanghai" in page
    assert "chart.umd.min.js" not in page


@pytest.mark.parametrize("persona", ["merchant", "provider", "outsider"])
def test_merchants_and_providers_find_no_replay(client, personas, run, persona):
    client.force_login(personas[persona])
    for url in (
        reverse("risks:replays"),
        reverse("risks:replay", args=[run.pk]),
        reverse("risks:replay", args=[run.pk]) + "?export=csv",
        reverse("risks:replay-rules", args=[run.pk]),
    ):
        assert client.get(url).status_code == 404, url
    page = client.get(reverse("risks:cases")).content.decode()
    assert reverse("risks:replays") not in page


def test_the_navigation_leads_operators_to_the_replay(client, operator, db):
    client.force_login(operator)
    page = client.get(reverse("risks:cases")).content.decode()
    assert f'href="{reverse("risks:replays")}"' in page


def test_the_page_renders_in_chinese(client, operator, run):
    operator.language = "zh-hans"
    operator.save(update_fields=["language"])
    page = page_of(client, operator)
    assert '<html lang="zh-hans">' in page
    assert "下载 CSV" in page and "R-001" in page
    assert page_of(client, operator, reverse("risks:replay", args=[run.pk]) + "?page=1")


def test_a_threshold_in_force_now_is_read_from_the_settings(client, operator, run):
    RiskSettings.objects.update_or_create(pk=1, defaults={"sla_signed_in_hours": 30})
    assert "SLA signed in (provider) 12 hours 30 hours" in text_of(page_of(client, operator))


def test_a_retired_rule_is_not_named_by_its_code(client, operator, db):
    report = json.loads(json.dumps(REPORT))
    report["rules"].append(rule_row("a_rule_since_removed", opened=1))
    report["losses"][3].update(rule="a_rule_since_removed", lead_hours=5.0, caught_at=timezone.now().isoformat())
    replay_run(report)
    text = text_of(page_of(client, operator))
    assert "a_rule_since_removed" not in text and "A rule no longer in use" in text
