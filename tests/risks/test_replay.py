"""The replay over a scripted week: the catches, their lead times and the
false alarms are known by construction, and the live tables are untouched."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from orders import expiry
from orders.choices import Action, AppraisalResult, OrderState
from orders.models import FeeCharge, Order, OrderEvent, SplitGroup, StageDuration
from risks import replay
from risks.choices import Rule
from risks.models import CaseEvent, Escalation, ReplayRun, RiskCase
from tests.factories import new_order, walk

S = OrderState
# The replayed week starts here: an hour boundary well in the past.
W0 = (timezone.now() - timedelta(days=12)).replace(minute=0, second=0, microsecond=0)
PASS = {"result": AppraisalResult.PASS}
NOT_REQUIRED = {"result": AppraisalResult.NOT_REQUIRED}
# The slow provider takes 20 h over each of its stages, the fast one 2 h; both
# journeys take 10 h.
SLOW, FAST = 20, 2


def at(hours):
    return W0 + timedelta(hours=hours)


def _walk(order, steps):
    """Take ``order`` through ``steps``: (action, hours after W0, parameters)."""
    return walk(order, steps, W0)


def _order(merchant, provider, paid, deadline, **fields):
    return new_order(merchant, provider, paid_at=at(paid), auto_confirm_at=at(deadline), **fields)


def _whole_flow(start, stage):
    """Ship, sign in at ``start``, every stage ``stage`` hours, a 10-hour journey, confirmed a day later."""
    steps = [(Action.SHIP, start - 0.3, {}), (Action.SIGN_IN, start, {})]
    t = start
    for action, params in [
        (Action.APPRAISE, PASS),
        (Action.INSPECT, {}),
        (Action.PACK, {}),
        (Action.PRINT_WAYBILL, {}),
    ]:
        t += stage
        steps.append((action, t, params))
    t += stage
    steps += [(Action.CARRIER_PICKUP, t, {}), (Action.CARRIER_DELIVERY, t + 10, {}), (Action.CONFIRM, t + 34, {})]
    return steps


@pytest.fixture
def week(merchant_org, provider_org, provider2_org, platform):
    """Before the week, one finished order each gives the providers' figures.
    In it (deadlines 100 h in):
    - A, slow, signed in at 1.5 h and left there: refunded at its deadline;
    - B, fast, through the flow by 30 h;
    - C, slow, signed in at 1.5 h but quick after: finished well;
    - D1 and D2, fast, one split group (D2 created at 5 h); both waybills
      picked up, so D2 carries a second logistics fee."""
    slow, fast = provider2_org, provider_org
    history = _order(merchant_org, slow, -210, -20)
    _walk(history, _whole_flow(-200, SLOW))
    history = _order(merchant_org, fast, -110, -20)
    _walk(history, _whole_flow(-100, FAST))

    a = _order(merchant_org, slow, 1, 100)
    _walk(a, [(Action.SHIP, 1.2, {}), (Action.SIGN_IN, 1.5, {})])
    b = _order(merchant_org, fast, 1, 100)
    _walk(b, _whole_flow(1.5, FAST))
    c = _order(merchant_org, slow, 1, 100)
    _walk(
        c,
        [
            (Action.SHIP, 1.2, {}),
            (Action.SIGN_IN, 1.5, {}),
            (Action.APPRAISE, 2.5, PASS),
            (Action.INSPECT, 3.5, {}),
            (Action.PACK, 4.5, {}),
            (Action.PRINT_WAYBILL, 5.5, {}),
            (Action.CARRIER_PICKUP, 6, {}),
            (Action.CARRIER_DELIVERY, 16, {}),
            (Action.CONFIRM, 30, {}),
        ],
    )
    d1 = _order(merchant_org, fast, 1, 100, trade_no="TRADE-D", sku="SKU-D")
    d2 = _order(merchant_org, fast, 5, 100, trade_no="TRADE-D", sku="SKU-D")
    d1 = _walk(d1, [(Action.SHIP, 1.2, {}), (Action.SIGN_IN, 1.5, {}), (Action.APPRAISE, 6, PASS)])
    _walk(
        d1,
        [
            (Action.INSPECT, 7, {}),
            (Action.PACK, 8, {}),
            (Action.PRINT_WAYBILL, 9, {}),
            (Action.CARRIER_PICKUP, 10, {}),
            (Action.CARRIER_DELIVERY, 15, {}),
            (Action.CONFIRM, 30, {}),
        ],
    )
    _walk(
        d2,
        [
            (Action.SHIP, 5.2, {}),
            (Action.SIGN_IN, 5.5, {}),
            (Action.APPRAISE, 6.5, NOT_REQUIRED),
            (Action.PRINT_WAYBILL, 7.5, {}),
            (Action.CARRIER_PICKUP, 10.5, {}),
            (Action.CARRIER_DELIVERY, 15.5, {}),
            (Action.CONFIRM, 30, {}),
        ],
    )
    expiry.apply_deadlines(now=at(100))
    return {"a": a, "b": b, "c": c, "d1": d1, "d2": d2}


# What the rules without the forecast need to see A late: the signed-in SLA
# and the deadline warning shorter than by default.
CHANGES = {"sla_signed_in_hours": 80, "deadline_at_risk_hours": 12, "forecast_min_samples": 1}


def _live():
    """Everything the replay must leave as it was."""
    return {
        "orders": list(Order.objects.order_by("pk").values()),
        "events": OrderEvent.objects.count(),
        "groups": list(SplitGroup.objects.order_by("pk").values()),
        "fees": FeeCharge.objects.count(),
        "durations": list(StageDuration.objects.values()),
        "cases": list(RiskCase.objects.values()),
        "case_events": CaseEvent.objects.count(),
        "escalations": Escalation.objects.count(),
    }


def test_the_replay_reports_the_expected_catches_lead_times_and_false_alarms(week):
    cfg, applied = replay.thresholds(CHANGES)
    assert applied == CHANGES
    before = _live()
    report = replay.replay(W0, at(168), cfg)
    assert _live() == before

    assert report.hours == 168
    assert report.orders == 5
    found = {
        loss.order_id: (loss.outcome, loss.rule, loss.lead(), loss.rule_without_forecast, loss.lead(False))
        for loss in report.losses
    }
    h = lambda hours: timedelta(hours=hours)  # noqa: E731
    assert found == {
        # Forecast to miss the hour it was signed in; without the forecast the
        # 80-hour SLA sees it at 82 h, 18 h before the deadline.
        week["a"].pk: (replay.AUTO_REFUND, Rule.FORECAST_MISS, h(98), Rule.STALLED, h(18)),
        # The split group is seen the hour its second order is created.
        week["d2"].pk: (replay.DUPLICATE_FEE, Rule.SPLIT_ORDER, h(95), Rule.SPLIT_ORDER, h(95)),
    }
    # C was forecast late for its first hour and then finished well.
    assert +report.false_alarms == {Rule.FORECAST_MISS: 1}
    assert +report.opened == {
        Rule.FORECAST_MISS: 2,
        Rule.STALLED: 1,
        Rule.DEADLINE_AT_RISK: 1,
        Rule.SPLIT_ORDER: 1,
        Rule.DUPLICATE_LOGISTICS_FEE: 1,
    }
    assert report.share_caught() == 1.0
    assert report.share_caught(with_forecast=False) == 0.5


def test_the_forecast_case_follows_the_forecast(week):
    """C's forecast recovers an hour after it was signed in: its case lasts that hour."""
    cfg, _applied = replay.thresholds(CHANGES)
    cases = []
    original = replay._evaluate

    def keep(ctx, happened, live, found):
        original(ctx, happened, live, found)
        cases[:] = found

    replay._evaluate = keep
    try:
        replay.replay(W0, at(24), cfg)
    finally:
        replay._evaluate = original
    c = next(case for case in cases if case.subject == f"order:{week['c'].pk}")
    assert (c.rule, c.opened_at, c.resolved_at) == (Rule.FORECAST_MISS, at(2), at(3))


def test_the_command_prints_the_table_writes_the_csv_and_keeps_the_run(week, tmp_path):
    settings_file = tmp_path / "thresholds.toml"
    settings_file.write_text("".join(f"{name} = {value}\n" for name, value in CHANGES.items()))
    out_csv = tmp_path / "losses.csv"
    before = _live()
    out = io.StringIO()
    period = ["--from", W0.isoformat(), "--to", at(168).isoformat()]
    call_command("replay", *period, "--thresholds", str(settings_file), "--csv", str(out_csv), stdout=out)
    assert _live() == before
    text = out.getvalue()
    assert "Forecast to miss the deadline" in text
    assert "Caught at least 24 h before the deadline: 100% (without forecast_miss: 50%)" in text
    rows = list(csv.DictReader(out_csv.open(encoding="utf-8")))
    assert [(r["Order"], r["By rule"], r["Hours before the deadline"]) for r in rows] == [
        (week["a"].order_no, Rule.FORECAST_MISS, "98.0"),
        (week["d2"].order_no, Rule.SPLIT_ORDER, "95.0"),
    ]
    run = ReplayRun.objects.get()
    assert run.thresholds == CHANGES and run.hours == 168
    assert run.report["headline"] == {"losses": 2, "caught": 2, "share_24h": 1.0, "share_24h_without_forecast": 0.5}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("sla_nonsense_hours = 3\n", "is not a threshold"),
        ('sla_signed_in_hours = "soon"\n', "must be a whole number"),
        ("sla_signed_in_hours = 0\n", "sla_signed_in_hours"),
        ("sla_signed_in_hours = \n", "not valid TOML"),
    ],
)
def test_a_bad_thresholds_file_is_refused_with_the_reason(db, tmp_path, content, message):
    settings_file = tmp_path / "thresholds.toml"
    settings_file.write_text(content)
    with pytest.raises(CommandError, match=message):
        call_command("replay", "--from", "2026-01-01", "--to", "2026-01-02", "--thresholds", str(settings_file))
    assert not ReplayRun.objects.exists()


def test_bad_dates_are_refused(db):
    with pytest.raises(CommandError, match="is not a date"):
        call_command("replay", "--from", "last week", "--to", "2026-01-02")
    with pytest.raises(CommandError, match="must come after"):
        call_command("replay", "--from", "2026-01-05", "--to", "2026-01-02")


def test_manage_py_passes_replay_settings_on_as_the_thresholds_file():
    from manage import thresholds_file

    assert thresholds_file(["manage.py", "replay", "--from", "2026-01-01", "--settings", "t.toml"]) == [
        "manage.py", "replay", "--from", "2026-01-01", "--thresholds", "t.toml"
    ]  # fmt: skip
    assert thresholds_file(["manage.py", "replay", "--settings=t.json"])[-1] == "--thresholds=t.json"
    # Any other command keeps Django's own --settings.
    assert thresholds_file(["manage.py", "migrate", "--settings", "portal.settings"])[-2] == "--settings"


def test_thresholds_also_come_as_json(db, tmp_path):
    settings_file = tmp_path / "thresholds.json"
    settings_file.write_text(json.dumps({"sla_signed_in_hours": 30}))
    call_command(
        "replay", "--from", "2026-01-01", "--to", "2026-01-01", "--thresholds", str(settings_file), stdout=io.StringIO()
    )
    assert ReplayRun.objects.get().thresholds == {"sla_signed_in_hours": 30}
