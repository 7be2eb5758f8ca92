"""The sweep as a whole: idempotent, bounded in queries, callable from beat and the shell."""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from orders.choices import OrderState
from orders.models import Order
from risks import escalations, rules, sweep
from risks.choices import Rule
from risks.models import CaseEvent, Escalation, RiskCase, RiskSettings
from risks.sweep import run_sweep
from risks.tasks import run_sweep as sweep_task
from tests.factories import new_order

S = OrderState


def bulk_orders(merchant_org, provider_org, total, stuck, now):
    """``total`` orders awaiting shipment, ``stuck`` of them past the 48 h SLA.
    Written directly: the sweep reads rows, and a thousand workflows would only be slow."""
    orders = []
    for i in range(total):
        old = i < stuck
        orders.append(
            Order(
                order_no=f"BULK-{i:05d}",
                trade_no=f"TB-{i:05d}",
                merchant=merchant_org,
                provider=provider_org,
                sku="S",
                item_title="item",
                amount=100,
                paid_at=now - timedelta(hours=60 if old else 1),
                auto_confirm_at=now + timedelta(days=10),
                state=S.AWAITING_SHIPMENT,
                state_changed_at=now - timedelta(hours=60 if old else 1),
            )
        )
    Order.objects.bulk_create(orders)


def test_a_second_sweep_opens_nothing_new(merchant_org, provider_org, platform):
    now = timezone.now()
    bulk_orders(merchant_org, provider_org, 30, 10, now)
    first = run_sweep(now)
    assert first.opened == {Rule.STALLED: 10}
    events = CaseEvent.objects.count()
    second = run_sweep(now + timedelta(minutes=5))
    assert second.opened == {} and second.resolved == {}
    assert RiskCase.objects.count() == 10 and CaseEvent.objects.count() == events


def _queries_of_a_sweep(merchant_org, provider_org, stuck):
    now = timezone.now()
    bulk_orders(merchant_org, provider_org, 1010, stuck, now)
    with CaptureQueriesContext(connection) as first:
        summary = run_sweep(now)
    assert summary.opened == {Rule.STALLED: stuck}
    with CaptureQueriesContext(connection) as again:
        run_sweep(now + timedelta(minutes=5))
    return len(first), len(again)


def test_the_query_count_does_not_grow_with_the_hits(postgres, merchant_org, provider_org, platform):
    # On PostgreSQL a batch of 1,000 rows is one statement; SQLite would split
    # it by its limit on query parameters, which is the database's batching, not the sweep's.
    few = _queries_of_a_sweep(merchant_org, provider_org, 10)
    CaseEvent.objects.all().delete()
    RiskCase.objects.all().delete()
    Order.objects.all().delete()
    many = _queries_of_a_sweep(merchant_org, provider_org, 1000)
    assert few == many, (few, many)


def test_the_command_prints_what_it_did(merchant_org, provider_org, platform, capsys):
    bulk_orders(merchant_org, provider_org, 5, 2, timezone.now())
    call_command("run_sweep")
    out = capsys.readouterr().out
    assert "opened 2" in out and "stalled" in out


def test_the_beat_task_runs_a_sweep(merchant_org, provider_org, platform):
    new_order(merchant_org, provider_org, deadline_in=timedelta(hours=10))
    result = sweep_task()
    assert result["opened"] == {Rule.DEADLINE_AT_RISK: 1}


def test_beat_schedules_the_sweep_every_five_minutes_by_default(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["risk-sweep"]
    assert entry["task"] == "risks.tasks.run_sweep" and entry["schedule"] == 300


def test_the_database_allows_one_live_case_per_rule_and_subject(merchant_org, provider_org, platform):
    import pytest
    from django.db import IntegrityError, transaction

    order = new_order(merchant_org, provider_org)
    fields = {
        "rule": Rule.STALLED,
        "subject": f"order:{order.pk}",
        "order": order,
        "trade_no": order.trade_no,
        "sku": order.sku,
        "owner": merchant_org,
        "severity": "medium",
        "due_at": timezone.now(),
        "opened_at": timezone.now(),
    }
    RiskCase.objects.create(**fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        RiskCase.objects.create(**fields)
    RiskCase.objects.update(status="resolved")
    RiskCase.objects.create(**fields)  # a new live case once the old one is closed
    assert Escalation.objects.count() == 0


def test_a_group_that_gains_an_open_order_during_the_sweep_stays_open(merchant_org, provider_org, platform):
    from orders import workflow
    from orders.choices import Action
    from orders.models import SplitGroup
    from risks import rules
    from risks.models import RiskSettings
    from risks.sweep import _close_finished_groups
    from tests.factories import platform_actor

    for _ in range(2):
        order = new_order(merchant_org, provider_org, trade_no="T-LATE", sku="S")
        workflow.perform(order, Action.REFUND, platform_actor(), reason="buyer cancelled")
    now = timezone.now()
    ctx = rules.Context.build(now, RiskSettings.current())
    assert [g["open_orders"] for g in rules.group_rows(ctx)] == [0]  # read: all finished
    new_order(merchant_org, provider_org, trade_no="T-LATE", sku="S")  # then a third arrives

    _close_finished_groups(ctx, now)
    assert SplitGroup.objects.get(trade_no="T-LATE").closed_at is None

    run_sweep()  # read afresh, the group has an open order and stays in view
    assert SplitGroup.objects.get(trade_no="T-LATE").closed_at is None


def test_a_sweep_with_nothing_due_asks_once_and_stops(
    merchant_org, provider_org, platform, monkeypatch, sweeps_skipped_only_when_nothing_is_due
):
    # Fresh open orders and many finished ones: nothing stuck, no case live.
    now = timezone.now()
    bulk_orders(merchant_org, provider_org, 40, 0, now)
    Order.objects.filter(pk__in=Order.objects.values("pk")[:30]).update(state=S.COMPLETED)
    assert run_sweep(now).line() == "opened 0, resolved 0, escalated 0"
    # Counted without the suite's check of the skip (which runs every rule).
    monkeypatch.setattr(sweep, "anything_due", sweeps_skipped_only_when_nothing_is_due)
    with CaptureQueriesContext(connection) as queries:
        summary = run_sweep(now + timedelta(minutes=5))
    assert summary.line() == "opened 0, resolved 0, escalated 0"
    statements = [q["sql"] for q in queries.captured_queries]
    # The thresholds, the stage durations (forecast_miss reads only orders
    # its figures can make late), and the probe; the platform only when a
    # case needs an owner.
    assert len(statements) == 3, statements
    assert not any(sql.startswith('SELECT "portal_organisation"') for sql in statements), statements
    assert RiskCase.objects.count() == 0


def test_the_probe_sees_each_kind_of_work(merchant_org, provider_org, platform):
    now = timezone.now()
    ctx = rules.Context.build(now, RiskSettings.current())
    assert not sweep.anything_due(ctx)
    bulk_orders(merchant_org, provider_org, 3, 1, now)
    assert sweep.anything_due(ctx)


def test_the_stalled_probe_agrees_with_the_rule_state_by_state(merchant_org, provider_org):
    """``any_over_sla`` (the probe's stalled part, written out on
    PostgreSQL) finds an order exactly when ``over_sla`` does: each state
    with an SLA, a second either side of its limit, each order alone."""
    from orders.models import any_over_sla

    now = timezone.now().replace(microsecond=0)
    sla = RiskSettings.current().sla()
    order = new_order(merchant_org, provider_org)
    for state, limit in sla.items():
        for offset, over in ((timedelta(seconds=-1), True), (timedelta(0), True), (timedelta(seconds=1), False)):
            Order.objects.filter(pk=order.pk).update(state=state, state_changed_at=now - limit + offset)
            assert Order.objects.over_sla(sla, now).exists() is over, (state, offset)
            assert Order.objects.filter(any_over_sla(sla, now)).exists() is over, (state, offset)
    Order.objects.filter(pk=order.pk).update(state=S.COMPLETED, state_changed_at=now - timedelta(days=365))
    assert not Order.objects.filter(any_over_sla(sla, now)).exists()  # a finished order has no SLA


def test_live_cases_still_hit_are_compared_in_sql_and_left_alone(merchant_org, provider_org, platform, monkeypatch):
    """A rule whose case stands on any evidence (deadline at risk) is not
    rebuilt for the orders that have a live case: those are only asked
    whether the rule still reads them. The outcome is the whole evaluation's:
    the cleared case resolves, the standing one stays as it was, the new hit
    opens."""
    import dataclasses
    from types import MappingProxyType

    now = timezone.now()
    bulk_orders(merchant_org, provider_org, 3, 0, now)
    Order.objects.update(auto_confirm_at=now + timedelta(hours=2))
    cleared, standing, finished = Order.objects.order_by("pk")
    first = run_sweep(now)
    assert first.opened == {Rule.DEADLINE_AT_RISK: 3}
    kept = RiskCase.objects.get(rule=Rule.DEADLINE_AT_RISK, order=standing)
    kept_status, kept_events = kept.status, kept.events.count()

    Order.objects.filter(pk=cleared.pk).update(auto_confirm_at=now + timedelta(days=10))
    Order.objects.filter(pk=finished.pk).update(state=S.COMPLETED)
    new_order(merchant_org, provider_org, order_no="PO-AT-RISK", auto_confirm_at=now + timedelta(hours=3))
    built = []
    spec = rules.RULES[Rule.DEADLINE_AT_RISK]

    def evaluate(ctx, orders=None):
        hits = spec.evaluate(ctx, orders)
        built.extend(hit.order_id for hit in hits)
        return hits

    replaced = MappingProxyType({**rules.RULES, Rule.DEADLINE_AT_RISK: dataclasses.replace(spec, evaluate=evaluate)})
    monkeypatch.setattr(rules, "RULES", replaced)
    second = run_sweep(now + timedelta(minutes=5))

    assert second.opened == {Rule.DEADLINE_AT_RISK: 1}
    assert second.resolved == {Rule.DEADLINE_AT_RISK: 2}
    assert built == [Order.objects.get(order_no="PO-AT-RISK").pk]
    live = RiskCase.objects.live().filter(rule=Rule.DEADLINE_AT_RISK)
    assert sorted(live.values_list("order__order_no", flat=True)) == sorted([standing.order_no, "PO-AT-RISK"])
    kept.refresh_from_db()
    assert (kept.status, kept.resolved_at, kept.events.count()) == (kept_status, None, kept_events)


def _probe_inputs(provider_org):
    from tests.orders.test_forecast_views import figures

    figures()
    figures(provider_org)
    sweep._kept_probe.clear()
    return RiskSettings.current()


def _counting_builds(monkeypatch):
    built = []
    build = sweep._build_probe

    def counted(ctx):
        built.append(ctx.now)
        return build(ctx)

    monkeypatch.setattr(sweep, "_build_probe", counted)
    return built


def test_the_kept_probe_is_the_probe_built_at_each_later_time(postgres, merchant_org, provider_org, monkeypatch):
    cfg = _probe_inputs(provider_org)
    now = timezone.now()
    first = rules.Context.build(now, cfg)
    first.forecaster()
    # Building reads nothing but the thresholds and the figures, which key it.
    with CaptureQueriesContext(connection) as queries:
        fresh = sweep._build_probe(first)
    assert not queries.captured_queries
    built = _counting_builds(monkeypatch)
    assert sweep._probe_statement(first) == fresh
    assert len(built) == 2  # built, and built again later to check that its times follow the clock
    # Five minutes on, past the local midnight's side of an hour, and just short of an hour.
    for later in (timedelta(minutes=5), timedelta(minutes=-7, microseconds=3), timedelta(minutes=59, seconds=59)):
        ctx = rules.Context.build(now + later, cfg)
        ctx.forecaster()
        kept = sweep._probe_statement(ctx)
        assert len(built) == 2, later  # not built again
        assert kept == sweep._build_probe(ctx), later
        del built[2:]  # the test's own build
    # Over an hour on it is built (and checked) again.
    ctx = rules.Context.build(now + timedelta(hours=2), cfg)
    assert sweep._probe_statement(ctx) == sweep._build_probe(ctx)
    assert len(built) == 5


@pytest.mark.parametrize(
    "waiting",
    [
        # A time cut to the second, and a day: neither follows the clock.
        lambda now: Escalation.objects.filter(first_response_due_at__lte=now.replace(microsecond=0)),
        lambda now: Escalation.objects.filter(first_response_due_at__date__lte=now.date()),
    ],
    ids=["cut-to-the-second", "a-day"],
)
def test_a_probe_whose_times_do_not_follow_the_clock_is_built_every_sweep(
    postgres, merchant_org, provider_org, monkeypatch, waiting
):
    cfg = _probe_inputs(provider_org)
    monkeypatch.setattr(escalations, "waiting_for_reminder", waiting)
    now = timezone.now().replace(microsecond=500_000)
    sweep._probe_statement(rules.Context.build(now, cfg))
    built = _counting_builds(monkeypatch)
    for later in (timedelta(minutes=5, microseconds=600_000), timedelta(hours=23)):
        ctx = rules.Context.build(now + later, cfg)
        assert sweep._probe_statement(ctx) == sweep._build_probe(ctx)
    assert len(built) == 4  # once each sweep, once by the test


def test_the_kept_probe_finds_what_becomes_due_later(postgres, merchant_org, provider_org, platform):
    cfg = _probe_inputs(provider_org)
    now = timezone.now()
    bulk_orders(merchant_org, provider_org, 3, 0, now)
    assert not sweep.anything_due(rules.Context.build(now, cfg))
    assert sweep._kept_probe
    # Awaiting shipment for an hour; its 48 h SLA passes 47 hours on.
    assert not sweep.anything_due(rules.Context.build(now + timedelta(hours=46), cfg))
    assert sweep.anything_due(rules.Context.build(now + timedelta(hours=48), cfg))


def test_a_changed_threshold_or_figure_builds_the_probe_again(postgres, merchant_org, provider_org):
    cfg = _probe_inputs(provider_org)
    now = timezone.now()
    sweep.anything_due(rules.Context.build(now, cfg))
    cfg.pending_sign_in_hours += 5
    cfg.save()
    ctx = rules.Context.build(now, RiskSettings.current())
    assert sweep._probe_statement(ctx) == sweep._build_probe(ctx)
    from orders.models import StageDuration

    StageDuration.objects.filter(provider=provider_org).update(p90=timedelta(hours=99))
    ctx = rules.Context.build(now, RiskSettings.current())
    assert sweep._probe_statement(ctx) == sweep._build_probe(ctx)
    assert len(sweep._kept_probe) == 1
