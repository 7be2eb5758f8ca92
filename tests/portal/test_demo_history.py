"""The demo's past (``portal.demo.seed_history``): on its first run the stage
durations, the forecasts and the risk rules have weeks of history to read.

One demo is seeded for the whole module (a few seconds) and rolled back at
its end; each test runs in a savepoint of it, as the ``db`` fixture does.
"""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from orders import durations
from orders.choices import TERMINAL_STATES, Action, OrderState
from orders.events import replay_order, snapshot
from orders.fees import extra_charges
from orders.forecast import Forecaster
from orders.models import Order, OrderEvent, StageDuration
from portal import demo
from portal.choices import EventSource
from portal.models import Organisation
from risks import rules
from risks.choices import Rule
from risks.models import RiskCase, RiskSettings

S = OrderState
SLOW, FAST = "P-DEMO-2", "P-DEMO-1"
MONTH = timedelta(days=30)


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """The time the demo was seeded, with the demo in the database until the module ends."""
    # What the function-scoped fixtures of conftest set for every test, set here for the module.
    quick = override_settings(
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"], NOTIFY_ENQUEUE=False, IMPORT_ENQUEUE=False
    )
    with django_db_blocker.unblock(), quick, transaction.atomic():
        call_command("seed_demo", "--orders", "150", stdout=StringIO())
        yield timezone.now()
        transaction.set_rollback(True)


@pytest.fixture
def providers(seeded, db):
    return {o.code: o for o in Organisation.objects.filter(code__in=[SLOW, FAST])}


def history():
    return Order.objects.filter(order_no__startswith="DEMO-H-")


def test_the_history_spans_five_weeks_of_finished_orders_each_replayable_from_its_events(seeded, db):
    now = seeded
    assert history().count() == 2 * demo.HISTORY_ORDERS_PER_PROVIDER + 2 * len(demo.HISTORY_SPLITS)
    assert set(history().values_list("state", flat=True)) <= TERMINAL_STATES
    events = OrderEvent.objects.filter(order__in=history())
    first = events.order_by("occurred_at").first().occurred_at
    assert now - timedelta(days=demo.HISTORY_DAYS + 1) < first < now - timedelta(days=demo.HISTORY_DAYS - 2)
    assert events.order_by("-occurred_at").first().occurred_at < now - timedelta(days=1)
    # Spread over the weeks, not bunched: events in each of the last four weeks.
    for week in range(4):
        assert events.filter(occurred_at__range=(now - timedelta(days=7 * week + 7), now - timedelta(days=7 * week)))
    for order in history():
        assert replay_order(order) == snapshot(order), order.order_no


def test_every_provider_has_its_own_figures_for_every_stage_after_a_refresh(seeded, db, providers):
    durations.refresh(seeded)
    enough = RiskSettings.current().forecast_min_samples
    for provider in providers.values():
        own = dict(StageDuration.objects.filter(provider=provider).values_list("stage", "samples"))
        assert set(own) == set(durations.STAGES), provider.code
        assert min(own.values()) >= enough, (provider.code, own)
    carriers = StageDuration.objects.filter(provider=None, stage=durations.TRANSIT).exclude(carrier="")
    assert set(carriers.values_list("carrier", flat=True)) == {"SF", "JD"}
    # The slow provider is slow: each of its stages several times the fast one's.
    figures = Forecaster.load()
    for stage in durations.PROVIDER_STAGES:
        slow, own = figures.figure(providers[SLOW].pk, stage)
        fast, _own = figures.figure(providers[FAST].pk, stage)
        assert own and slow.median > 3 * fast.median, stage


def test_the_slow_providers_open_orders_are_forecast_late_and_the_fast_ones_on_time(seeded, db, providers):
    ctx = rules.Context.build(timezone.now(), RiskSettings.current())
    late = Order.objects.filter(pk__in=[hit.order_id for hit in rules.forecast_miss(ctx)])
    assert late.filter(provider=providers[SLOW], state=S.SIGNED_IN).exists()
    assert not late.filter(provider=providers[FAST]).exists()
    assert Order.objects.open().filter(provider=providers[FAST], state__in=durations.PROVIDER_STAGES).count() >= 10
    # The first sweep, the one seed_demo runs, opened their cases already.
    cases = RiskCase.objects.filter(rule=Rule.FORECAST_MISS)
    assert cases.filter(order__provider=providers[SLOW]).exists()
    assert not cases.filter(order__provider=providers[FAST]).exists()


def test_the_last_30_days_hold_losses_and_duplicate_fees_to_be_caught(seeded, db):
    since = seeded - MONTH
    expired = OrderEvent.objects.filter(
        order__in=history(),
        action=Action.EXPIRE,
        to_state=S.AUTO_REFUNDED,
        source=EventSource.SWEEP,
        occurred_at__gte=since,
    ).select_related("order")
    assert expired.count() >= 3
    for event in expired:
        assert event.occurred_at == event.order.auto_confirm_at
    assert extra_charges(since=since).filter(order__in=history()).exists()
    # Most orders ended well.
    finished = history().filter(auto_confirm_at__gte=since)
    assert finished.filter(state=S.COMPLETED).count() > 5 * finished.filter(state=S.AUTO_REFUNDED).count()


def test_the_slow_providers_history_has_forecast_catches_and_false_alarms(seeded, db, providers):
    """At its sign-in, a slow provider's past order was forecast (by today's
    figures) to miss its deadline: some were then lost, most were not."""
    figures = Forecaster.load()
    outcomes = set()
    signed = OrderEvent.objects.filter(
        order__in=history().filter(provider=providers[SLOW]), to_state=S.SIGNED_IN
    ).select_related("order")
    for event in signed:
        forecast = figures.forecast(
            provider_id=event.order.provider_id,
            state=S.SIGNED_IN,
            since=event.occurred_at,
            deadline=event.order.auto_confirm_at,
            now=event.occurred_at,
        )
        if forecast.late:
            outcomes.add(event.order.state)
    assert {S.AUTO_REFUNDED, S.COMPLETED} <= outcomes
