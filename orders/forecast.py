"""When an open order will reach its buyer, from how long its provider and
the journey usually take (``StageDuration``, refreshed by
``orders.durations``), and whether that is before its confirmation deadline.

An order is forecast once its provider has signed for it: from then on what
is left is the provider's stages from the current one to the pickup, and the
journey to the buyer. The expected delivery is

    now + what is left of the current stage + the later stages + the journey

taking each at its 90th percentile (nine orders in ten finished the stage
within it), what is left of the current stage being its 90th percentile less
the time already spent in it (never below nothing). The same sum at the
medians is the likely delivery.

Each stage is taken from the provider's own figure when it has at least
``min_samples`` orders behind it, and otherwise from all providers' figure;
a forecast built only from the provider's own figures has ``own`` set (the
screens call it "this provider's history"). With no figure at all for a stage
there is no forecast.

Everything here is arithmetic on a table of a few rows per provider, loaded
once (``Forecaster.load``) per page, sweep or replayed hour; nothing reads
the event log.
"""

import datetime
from collections import namedtuple
from dataclasses import dataclass
from datetime import timedelta

from django.apps import apps
from django.db import NotSupportedError, connection
from django.db.models import (
    BooleanField,
    Case,
    DateTimeField,
    DurationField,
    Exists,
    F,
    Func,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Least

from orders.choices import OrderState
from orders.durations import PROVIDER_STAGES, TRANSIT
from orders.models import StageDuration
from portal import kept

S = OrderState
# The states an order is forecast in: from signed in to on its way to the buyer.
FORECAST_STATES = (*PROVIDER_STAGES, TRANSIT)
# What a provider's figure for a stage needs behind it before it is used
# (``RiskSettings.forecast_min_samples`` overrides it).
MIN_SAMPLES = 20
ZERO = timedelta(0)


class _PerProviderAndState(Func):
    """An order's figure in a table of figures per provider and state
    (``values``: ``{(provider_id, state): value}``; ``own`` the providers with
    rows of their own, the others taking the row of ``None``); NULL where the
    table has none.

    On PostgreSQL the table is sent as one two-dimensional array, and the
    order's row and column are found with ``array_position``: three
    parameters, whatever the number of providers. Spelled out as CASE
    expressions, a dozen providers' figures made a statement of 15,000
    characters that took Django 27 ms to build and PostgreSQL 6 ms to plan,
    every sweep. Elsewhere it is that CASE."""

    def __init__(self, values, own, output_field):
        super().__init__(F("provider_id"), F("state"), output_field=output_field)
        self.values, self.own = values, list(own)

    def as_sql(self, compiler, connection, **extra):
        def by_state(provider_id):
            whens = [When(state=s, then=Value(v)) for (p, s), v in self.values.items() if p == provider_id]
            return Case(*whens, default=None, output_field=self.output_field)

        case = Case(
            *(When(provider_id=p, then=by_state(p)) for p in self.own),
            default=by_state(None),
            output_field=self.output_field,
        )
        return compiler.compile(case.resolve_expression(compiler.query))

    def as_postgresql(self, compiler, connection, **extra):
        (provider, provider_params), (state, state_params) = map(compiler.compile, self.get_source_expressions())
        table = [[self.values.get((p, s)) for s in FORECAST_STATES] for p in [*self.own, None]]
        sql = (
            f"(%s::{self.output_field.db_type(connection)}[])"
            f"[COALESCE(array_position(%s::bigint[], ({provider})::bigint), %s)]"
            f"[array_position(%s::text[], ({state})::text)]"
        )
        states = [str(s) for s in FORECAST_STATES]
        return sql, (table, self.own, len(self.own) + 1, *provider_params, states, *state_params)


# The order columns ``_AnyOrderLate`` reads.
_LATE_COLUMNS = ("provider", "state", "auto_confirm_at", "state_changed_at")


class _AnyOrderLate(Func):
    """PostgreSQL: whether an order of the provider ``provider`` (an
    expression, the provider's id) is late at ``now``, by the tables of
    ``Forecaster._late_tables``: for each forecast state, the provider's
    figures (its own row, or the row of ``None``) picked out of the tables
    once, then one range of the (provider, state, deadline) index up to
    ``now`` plus its longest, each order in it tested as ``late_q`` tests
    it. A few parameters and a short statement, where the same asked through
    the ORM (an EXISTS per state) cost Django 5.6 ms to build and PostgreSQL
    2.5 ms to plan."""

    output_field = BooleanField()

    def __init__(self, provider, now, own, left, longest):
        super().__init__(provider)
        self.now, self.own, self.left, self.longest = now, list(own), left, longest

    def as_sql(self, compiler, connection, **extra):
        raise NotSupportedError("written for PostgreSQL; late_providers_q asks other databases through the ORM")

    def as_postgresql(self, compiler, connection, **extra):
        provider, provider_params = compiler.compile(self.get_source_expressions()[0])
        rows = [*self.own, None]

        def table(values):
            return [[values.get((p, s)) for s in FORECAST_STATES] for p in rows]

        order = apps.get_model("orders", "Order")
        quote = connection.ops.quote_name
        column = {name: f"o.{quote(order._meta.get_field(name).column)}" for name in _LATE_COLUMNS}
        sql = (
            "EXISTS (SELECT 1 FROM ("
            "SELECT f.state, (%s::interval[])[g.r][f.k] AS longest, (%s::timestamptz[])[g.r][f.k] AS left_at "
            "FROM unnest(%s::text[]) WITH ORDINALITY AS f(state, k), "
            f"(SELECT COALESCE(array_position(%s::bigint[], ({provider})::bigint), %s) AS r) AS g) AS x "
            f"WHERE EXISTS (SELECT 1 FROM {quote(order._meta.db_table)} AS o "
            f"WHERE {column['provider']} = ({provider}) AND {column['state']} = x.state "
            f"AND {column['auto_confirm_at']} < %s::timestamptz + x.longest "
            f"AND ({column['auto_confirm_at']} < x.left_at "
            f"OR {column['auto_confirm_at']} < LEAST({column['state_changed_at']}, %s::timestamptz) + x.longest)))"
        )
        states = [str(s) for s in FORECAST_STATES]
        params = (
            table(self.longest),
            table(self.left),
            states,
            self.own,
            *provider_params,
            len(rows),
            *provider_params,
            self.now,
            self.now,
        )
        return sql, params


@dataclass(frozen=True, slots=True)
class Figure:
    median: timedelta
    p90: timedelta
    samples: int


@dataclass(frozen=True, slots=True)
class Forecast:
    """One order's forecast."""

    # Delivery by the 90th percentiles: what the order is judged by.
    expected_at: datetime.datetime
    # Delivery by the medians.
    likely_at: datetime.datetime
    deadline: datetime.datetime
    # Every stage from the provider's own figures (else some from all providers').
    own: bool
    # The fewest orders behind any figure used.
    samples: int
    # How much earlier than the deadline it must be expected (``forecast_margin_hours``).
    margin: timedelta = timedelta(0)

    @property
    def late(self) -> bool:
        """Whether the expected delivery falls after the deadline less the
        margin: what the ``forecast_miss`` rule raises a case for."""
        return self.expected_at > self.deadline - self.margin

    @property
    def slack(self) -> timedelta:
        """How long before the deadline the order is expected (negative: after it)."""
        return self.deadline - self.expected_at


@dataclass(frozen=True, slots=True)
class Remaining:
    """What is left for an order of one provider in one state: the current
    stage's figure, and the stages after it added up."""

    current: Figure
    later_p90: timedelta
    later_median: timedelta
    own: bool
    samples: int

    @property
    def longest(self) -> timedelta:
        """The most that can be left (nothing yet spent in the current stage)."""
        return self.current.p90 + self.later_p90


# What a forecast reads of a ``StageDuration`` row.
_FIGURE_FIELDS = ("provider_id", "carrier", "stage", "median", "p90", "samples", "computed_at")
_Row = namedtuple("_Row", (*_FIGURE_FIELDS, "configured_min_samples", "configured_margin_hours"))


def _figures():
    """Every ``StageDuration`` row as plain values (read every page and
    sweep), each with the thresholds in force."""
    # The thresholds live with the risk rules; read by name so that the
    # orders engine does not import the risks app.
    thresholds = apps.get_model("risks", "RiskSettings")
    defaults = thresholds()
    saved = thresholds.objects.filter(pk=1)

    def configured(name):
        return Coalesce(Subquery(saved.values(name)), Value(getattr(defaults, name)))

    return StageDuration.objects.annotate(
        configured_min_samples=configured("forecast_min_samples"),
        configured_margin_hours=configured("forecast_margin_hours"),
    ).values(*_Row._fields)


# Written by the ORM once per process: it takes no values.
_FIGURES = kept.Kept(_figures, ((), ()))


class Forecaster:
    """The figures of ``StageDuration`` arranged for forecasting: per provider
    and state, what is left (``remaining``)."""

    def __init__(self, rows, min_samples=MIN_SAMPLES, margin=ZERO):
        # ``rows``: ``StageDuration`` rows, or anything with ``_FIGURE_FIELDS``.
        self.min_samples = min_samples
        self.margin = margin
        self.own: dict[tuple[int, str], Figure] = {}
        self.pooled: dict[str, Figure] = {}
        self.carriers: dict[str, Figure] = {}
        self.computed_at = None
        for row in rows:
            figure = Figure(row.median, row.p90, row.samples)
            if row.provider_id is not None:
                self.own[row.provider_id, row.stage] = figure
            elif row.carrier:
                self.carriers[row.carrier] = figure
            else:
                self.pooled[row.stage] = figure
            self.computed_at = row.computed_at
        self._remaining: dict[tuple[int, str], Remaining | None] = {}

    @classmethod
    def load(cls, min_samples=None, margin=None) -> "Forecaster":
        """The figures as they are now, in one query: the thresholds in force
        (``RiskSettings.forecast_min_samples`` and ``forecast_margin_hours``)
        come along with them, unless given."""
        rows = [_Row(**row) for row in _FIGURES.rows(())]
        if rows:
            in_force = rows[0].configured_min_samples, rows[0].configured_margin_hours
        else:  # no figures, so no thresholds came along: the defaults stand in
            defaults = apps.get_model("risks", "RiskSettings")()
            in_force = defaults.forecast_min_samples, defaults.forecast_margin_hours
        if min_samples is None:
            min_samples = in_force[0]
        if margin is None:
            margin = timedelta(hours=in_force[1])
        return cls(rows, min_samples, margin)

    def key(self) -> tuple:
        """Everything a forecast here depends on, for comparing two loads."""
        return (
            self.min_samples,
            self.margin,
            *(tuple(sorted(figures.items())) for figures in (self.own, self.pooled, self.carriers)),
        )

    def figure(self, provider_id, stage) -> tuple[Figure | None, bool]:
        """The figure a stage of ``provider_id`` is forecast by, and whether it is the provider's own."""
        own = self.own.get((provider_id, stage))
        if own is not None and own.samples >= self.min_samples:
            return own, True
        return self.pooled.get(stage), False

    def remaining(self, provider_id, state) -> Remaining | None:
        """What is left for an order of ``provider_id`` in ``state``; ``None``
        when the state is not forecast or a stage has no figure."""
        key = (provider_id, state)
        if key not in self._remaining:
            self._remaining[key] = self._work_out(provider_id, state)
        return self._remaining[key]

    def _work_out(self, provider_id, state):
        if state not in FORECAST_STATES:
            return None
        left = FORECAST_STATES[FORECAST_STATES.index(state) :]
        figures = [self.figure(provider_id, stage) for stage in left]
        if any(figure is None for figure, _own in figures):
            return None
        (current, _own), *later = figures
        return Remaining(
            current=current,
            later_p90=sum((f.p90 for f, _own in later), ZERO),
            later_median=sum((f.median for f, _own in later), ZERO),
            own=all(own for _figure, own in figures),
            samples=min(f.samples for f, _own in figures),
        )

    def late_q(self, now) -> Q:
        """The orders whose forecast at ``now`` is late (``Forecast.late``), as
        a condition the database answers. With ``left`` what is left after the
        current stage and ``longest`` that plus the whole current stage (the
        margin added to both), the expected delivery falls after the deadline
        less the margin when the deadline comes before ``now + left`` (the
        stage overran its 90th percentile), or before ``since + longest``
        (``since``: when the order entered its state, or now if that is ahead).

        ``left`` and ``longest`` are looked up per provider and state
        (``_PerProviderAndState``) rather than spelled out in one condition
        per provider and state: the planner then has no long OR to test every
        partial index against. Every late order's deadline comes before
        ``now`` plus the longest of all, which the open-deadline index
        answers first."""
        tables = self._late_tables(now)
        if tables is None:
            return Q(pk__in=[])
        own, left, longest = tables
        furthest = max(longest.values())
        started = Least(F("state_changed_at"), Value(now, output_field=DateTimeField()))
        return Q(state__in=FORECAST_STATES, auto_confirm_at__lt=now + furthest) & (
            Q(auto_confirm_at__lt=_PerProviderAndState(left, own, output_field=DateTimeField()))
            | Q(auto_confirm_at__lt=started + _PerProviderAndState(longest, own, output_field=DurationField()))
        )

    def late_providers_q(self, now) -> Q:
        """The providers (``Organisation`` rows) with an order whose forecast
        at ``now`` is late: ``late_q`` asked provider by provider. On
        PostgreSQL state by state too (``_AnyOrderLate``): every late order's
        deadline comes before ``now`` plus the longest of its own provider
        and state, so each is one range of the (provider, state, deadline)
        index, a few entries long, where ``late_q`` reads every open order
        due before the longest of all providers."""
        tables = self._late_tables(now)
        if tables is None:
            return Q(pk__in=[])
        if connection.vendor == "postgresql":
            return Q(_AnyOrderLate(F("pk"), now, *tables))
        # Elsewhere the speed of the plan matters less than saying it once.
        order = apps.get_model("orders", "Order")
        return Q(Exists(order.objects.filter(provider_id=OuterRef("pk")).filter(self.late_q(now))))

    def _late_tables(self, now):
        """``late_q``'s tables: the providers with figures of their own, and
        ``left`` (a moment) and ``longest`` (a duration) per provider (``None``
        for the others) and state; ``None`` when there is no figure at all."""
        own = sorted({provider for provider, _stage in self.own})
        left, longest = {}, {}
        for provider_id in [*own, None]:
            for state in FORECAST_STATES:
                remaining = self.remaining(provider_id, state)
                if remaining is not None:
                    left[provider_id, state] = now + remaining.later_p90 + self.margin
                    longest[provider_id, state] = remaining.longest + self.margin
        return (own, left, longest) if longest else None

    def forecast(self, *, provider_id, state, since, deadline, now) -> Forecast | None:
        """The forecast of an order of ``provider_id`` in ``state`` since
        ``since`` (when it entered the state), whose deadline is ``deadline``."""
        remaining = self.remaining(provider_id, state)
        if remaining is None:
            return None
        spent = max(now - since, ZERO)
        expected = now + max(remaining.current.p90 - spent, ZERO) + remaining.later_p90
        likely = now + max(remaining.current.median - spent, ZERO) + remaining.later_median
        return Forecast(expected, likely, deadline, remaining.own, remaining.samples, self.margin)

    def of(self, order, now) -> Forecast | None:
        """The forecast of an ``Order`` (or anything with its fields)."""
        return self.forecast(
            provider_id=order.provider_id,
            state=order.state,
            since=order.state_changed_at,
            deadline=order.auto_confirm_at,
            now=now,
        )
