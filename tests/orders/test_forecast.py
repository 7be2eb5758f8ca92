"""Forecasts: the figures behind them, the arithmetic, and the rule that
raises a case when an order is expected after its deadline."""

from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from orders import durations, workflow
from orders.choices import Action, AppraisalResult, OrderState
from orders.forecast import Forecaster
from orders.models import StageDuration
from portal.models import Notification, Organisation
from risks import sweep
from risks.choices import Rule
from risks.models import RiskCase
from tests.factories import new_order, platform_actor, walk

S = OrderState
NOW = timezone.now().replace(microsecond=0)
h = lambda hours: timedelta(hours=hours)  # noqa: E731
PROVIDER_STATES = (S.SIGNED_IN, S.APPRAISED, S.INSPECTED, S.PACKED, S.WAYBILL_PRINTED)


def figure(provider, stage, median, p90, samples=50, carrier=""):
    return StageDuration(
        provider_id=provider,
        carrier=carrier,
        stage=stage,
        median=h(median),
        p90=h(p90),
        samples=samples,
        window=durations.WINDOW,
        computed_at=NOW,
    )


def test_the_forecast_adds_what_is_left_at_the_90th_percentile_and_the_median():
    rows = [figure(7, stage, 2, 5) for stage in PROVIDER_STATES] + [figure(7, S.OUTBOUND, 20, 30)]
    forecaster = Forecaster(rows, min_samples=20)
    # Signed in 1 h ago: 4 h left of the stage, four more stages, the journey.
    found = forecaster.forecast(provider_id=7, state=S.SIGNED_IN, since=NOW - h(1), deadline=NOW + h(60), now=NOW)
    assert found.expected_at == NOW + h(4 + 4 * 5 + 30)
    assert found.likely_at == NOW + h(1 + 4 * 2 + 20)
    assert (found.own, found.samples, found.late, found.slack) == (True, 50, False, h(6))
    # Longer in the stage than nine in ten: nothing is left of it, not less.
    late = forecaster.forecast(provider_id=7, state=S.PACKED, since=NOW - h(9), deadline=NOW + h(30), now=NOW)
    assert late.expected_at == NOW + h(5 + 30) and late.late and late.slack == -h(5)
    # On its way: the journey only.
    outbound = forecaster.forecast(provider_id=7, state=S.OUTBOUND, since=NOW - h(10), deadline=NOW, now=NOW)
    assert outbound.expected_at == NOW + h(20)


def test_a_stage_with_too_few_samples_falls_back_to_all_providers_figure():
    rows = [figure(7, stage, 2, 5) for stage in PROVIDER_STATES] + [figure(7, S.OUTBOUND, 20, 30)]
    rows[1] = figure(7, S.APPRAISED, 1, 1, samples=3)
    rows += [figure(None, S.APPRAISED, 10, 12, samples=400)]
    forecaster = Forecaster(rows, min_samples=20)
    found = forecaster.forecast(provider_id=7, state=S.SIGNED_IN, since=NOW, deadline=NOW + h(99), now=NOW)
    assert found.expected_at == NOW + h(5 + 12 + 3 * 5 + 30)
    assert (found.own, found.samples) == (False, 50)
    # With the threshold lowered, its own three samples are enough.
    assert Forecaster(rows, min_samples=3).forecast(
        provider_id=7, state=S.SIGNED_IN, since=NOW, deadline=NOW + h(99), now=NOW
    ).expected_at == NOW + h(5 + 1 + 3 * 5 + 30)


def test_no_forecast_without_a_figure_or_before_sign_in():
    rows = [figure(7, stage, 2, 5) for stage in PROVIDER_STATES]  # no journey figure anywhere
    forecaster = Forecaster(rows)
    assert forecaster.forecast(provider_id=7, state=S.SIGNED_IN, since=NOW, deadline=NOW, now=NOW) is None
    assert forecaster.remaining(7, S.ARRIVED) is None
    assert forecaster.remaining(7, S.DELIVERED) is None


# --- from the events --------------------------------------------------------------


def finished(merchant, provider, base, stage_hours, transit, by="SF"):
    """An order through the whole flow from ``base``: each provider stage ``stage_hours``, the journey ``transit``."""
    order = new_order(merchant, provider, paid_at=base - h(2), auto_confirm_at=base + h(500))
    steps = [(Action.SHIP, -1, {}), (Action.SIGN_IN, 0, {})]
    t = 0
    for action, params in [
        (Action.APPRAISE, {"result": AppraisalResult.PASS}),
        (Action.INSPECT, {}),
        (Action.PACK, {}),
        (Action.PRINT_WAYBILL, {}),
        (Action.CARRIER_PICKUP, {"carrier": by}),
    ]:
        t += stage_hours
        steps.append((action, t, params))
    steps.append((Action.CARRIER_DELIVERY, t + transit, {"carrier": by}))
    return walk(order, steps, base)


@pytest.fixture
def paces(merchant_org, provider_org, provider2_org):
    """Provider one's three orders took 1, 2 and 6 hours a stage; provider
    two's one order 30 hours a stage. Journeys: SF 10, 20 and 40 h; JD 30 h."""
    for days, (stage, transit, by) in enumerate([(1, 10, "SF"), (2, 20, "SF"), (6, 40, "SF")]):
        finished(merchant_org, provider_org, NOW - timedelta(days=20 - days), stage, transit, by)
    finished(merchant_org, provider2_org, NOW - timedelta(days=15), 30, 30, "JD")


def test_the_refresh_measures_each_provider_all_providers_and_each_carrier(paces, provider_org, provider2_org):
    durations.refresh(NOW)
    found = {(r.provider_id, r.carrier, r.stage): (r.median, r.p90, r.samples) for r in StageDuration.objects.all()}
    assert found[provider_org.pk, "", S.APPRAISED] == (h(2), h(2 + 0.8 * 4), 3)
    assert found[provider2_org.pk, "", S.PACKED] == (h(30), h(30), 1)
    # All providers: 1, 2, 6, 30.
    assert found[None, "", S.INSPECTED] == (h(4), h(6 + 0.7 * 24), 4)
    # The journey per provider, over all, and per carrier.
    assert found[provider_org.pk, "", S.OUTBOUND] == (h(20), h(20 + 0.8 * 20), 3)
    assert found[None, "SF", S.OUTBOUND] == (h(20), h(36), 3)
    assert found[None, "JD", S.OUTBOUND] == (h(30), h(30), 1)
    assert found[None, "", S.OUTBOUND] == (h(25), h(40 - 0.3 * 10), 4)
    assert {key for key in found if key[1]} == {(None, "SF", S.OUTBOUND), (None, "JD", S.OUTBOUND)}


def test_the_python_figures_match_postgresqls(postgres, paces):
    durations.refresh(NOW)
    in_sql = {(r.provider_id, r.carrier, r.stage, r.median, r.p90, r.samples) for r in StageDuration.objects.all()}
    in_python = {
        (r.provider_id, r.carrier, r.stage, r.median, r.p90, r.samples)
        for r in durations._in_python(durations.samples(NOW), NOW, durations.WINDOW)
    }
    assert in_sql == in_python
    assert {(r.provider_id, r.carrier, r.stage, r.median, r.p90) for r in durations.figures(NOW)} == {
        row[:5] for row in in_sql
    }


# --- the rule -----------------------------------------------------------------------


def test_each_load_reads_the_figures_and_the_thresholds_in_force_through_one_kept_statement(paces):
    from orders import forecast
    from risks.models import RiskSettings

    durations.refresh(NOW)
    loaded = Forecaster.load()
    assert forecast._FIGURES.statement(()) is not None
    stored = Forecaster(StageDuration.objects.all(), loaded.min_samples, loaded.margin)
    assert loaded.key() == stored.key() and loaded.own and loaded.pooled and loaded.carriers
    assert (loaded.min_samples, loaded.margin) == (
        RiskSettings().forecast_min_samples,
        h(RiskSettings().forecast_margin_hours),
    )
    cfg = RiskSettings.current()
    cfg.forecast_min_samples, cfg.forecast_margin_hours = 3, 5
    cfg.save()
    StageDuration.objects.filter(provider_id=None, carrier="", stage=S.PACKED).update(median=h(7))
    again = Forecaster.load()
    assert (again.min_samples, again.margin) == (3, h(5))
    assert again.pooled[S.PACKED].median == h(7)


@pytest.fixture
def thresholds(db):
    from risks.models import RiskSettings

    cfg = RiskSettings.current()
    cfg.forecast_min_samples = 1
    cfg.save()
    return cfg


def test_forecast_miss_opens_before_the_stall_on_a_slow_providers_order_only(
    paces, thresholds, merchant_org, provider_org, provider2_org, merchant
):
    durations.refresh(NOW)
    # Both signed in now with 100 h to the deadline: provider one needs at most
    # 4 × 5.2 h + the journey's 36 h; provider two 4 × 30 + 30 h.
    fast = new_order(merchant_org, provider_org, paid_at=NOW - h(2), auto_confirm_at=NOW + h(100))
    slow = new_order(merchant_org, provider2_org, paid_at=NOW - h(2), auto_confirm_at=NOW + h(100))
    for order in (fast, slow):
        walk(order, [(Action.SHIP, -1, {}), (Action.SIGN_IN, 0, {})], NOW)

    sweep.run_sweep(NOW + h(1))
    live = {(c.rule, c.order_id) for c in RiskCase.objects.live()}
    assert live == {(Rule.FORECAST_MISS, slow.pk)}
    case = RiskCase.objects.get(rule=Rule.FORECAST_MISS)
    assert case.owner_id == provider2_org.pk
    # The merchant is told too, though the case is the provider's.
    assert Notification.objects.filter(recipient=merchant).exists()

    # A day on, both are over the signed-in SLA: the stall opens only now.
    sweep.run_sweep(NOW + h(25))
    live = {(c.rule, c.order_id) for c in RiskCase.objects.live()}
    assert live == {(Rule.FORECAST_MISS, slow.pk), (Rule.STALLED, slow.pk), (Rule.STALLED, fast.pk)}


def test_the_forecast_case_resolves_itself_when_the_forecast_recovers(paces, thresholds, merchant_org, provider2_org):
    durations.refresh(NOW)
    slow = new_order(merchant_org, provider2_org, paid_at=NOW - h(2), auto_confirm_at=NOW + h(100))
    slow = walk(slow, [(Action.SHIP, -1, {}), (Action.SIGN_IN, 0, {})], NOW)
    sweep.run_sweep(NOW + h(1))
    assert RiskCase.objects.live().filter(rule=Rule.FORECAST_MISS).exists()
    # The platform extends the deadline by five days: expected well before it now.
    workflow.perform(slow, Action.EXTEND_DEADLINE, platform_actor(), occurred_at=NOW + h(1.5), hours=120)
    sweep.run_sweep(NOW + h(2))
    assert not RiskCase.objects.live().filter(rule=Rule.FORECAST_MISS).exists()


@pytest.mark.parametrize("margin", [0, 6])
def test_the_databases_late_test_agrees_with_each_forecast(merchant_org, provider_org, provider2_org, margin):
    """``Forecaster.late_q`` (what the rule reads) holds exactly the orders
    whose forecast is late: own figures, all providers' figures, time spent
    past the stage's 90th percentile, a time in state ahead of the clock, and
    deadlines on either side of the line, to the second."""
    from orders.models import Order

    own = [figure(provider_org.pk, stage, 2, 5) for stage in PROVIDER_STATES] + [
        figure(provider_org.pk, S.OUTBOUND, 20, 30)
    ]
    pooled = [figure(None, stage, 3, 8) for stage in PROVIDER_STATES] + [figure(None, S.OUTBOUND, 24, 40)]
    forecaster = Forecaster(own + pooled, min_samples=20, margin=h(margin))
    template = new_order(merchant_org, provider_org)
    fields = {f.attname: getattr(template, f.attname) for f in Order._meta.concrete_fields if not f.primary_key}
    rows, n = [], 0
    for provider in (provider_org, provider2_org):
        for state in (S.ARRIVED, *PROVIDER_STATES, S.OUTBOUND):
            for spent in (-2, 0, 3, 9):
                since = NOW - h(spent)
                expected = forecaster.forecast(provider_id=provider.pk, state=state, since=since, deadline=NOW, now=NOW)
                line = (expected.expected_at if expected else NOW) + h(margin)
                for offset in (timedelta(seconds=-1), timedelta(0), timedelta(seconds=1), h(-20), h(20)):
                    n += 1
                    rows.append(
                        Order(
                            **{
                                **fields,
                                "order_no": f"PO-LATE-{n}",
                                "provider_id": provider.pk,
                                "state": state,
                                "state_changed_at": since,
                                "auto_confirm_at": line + offset,
                            }
                        )
                    )
    Order.objects.bulk_create(rows)
    candidates = Order.objects.exclude(pk=template.pk)
    found = set(candidates.filter(forecaster.late_q(NOW)).values_list("order_no", flat=True))
    expected = {o.order_no for o in candidates if (f := forecaster.of(o, NOW)) is not None and f.late}
    assert found == expected
    assert 0 < len(expected) < len(rows)

    # The sweep's probe asks from the providers' side (``late_providers_q``):
    # each order alone among the forecast ones, its provider is found
    # exactly when the order is late.
    Order.objects.filter(pk__in=[row.pk for row in rows]).update(state=S.COMPLETED)
    providers = Organisation.objects.filter(forecaster.late_providers_q(NOW)).values_list("pk", flat=True)
    sql, params = providers.query.sql_with_params()  # built once: the rows change, not the question
    with connection.cursor() as cursor:
        for row in rows:
            cursor.execute("UPDATE orders_order SET state = %s WHERE id = %s", [row.state, row.pk])
            cursor.execute(sql, params)
            found = [pk for (pk,) in cursor.fetchall()]
            assert found == ([row.provider_id] if row.order_no in expected else []), row.order_no
            cursor.execute("UPDATE orders_order SET state = %s WHERE id = %s", [S.COMPLETED.value, row.pk])
