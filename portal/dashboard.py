"""The dashboard (SPEC §6.1): where money is about to be lost, in charts.

Each chart is one function that takes a ``Board`` (one person's scope and the
figures read for it) and returns a ``Chart``: its title, the categories, the
series of numbers and, beside each number, the filtered list that shows the
same orders, cases or escalations. The page draws the charts and their tables
from these structures, the CSV downloads write them, and the tests compare
each number with the list it links to.

Every figure is counted in the person's scope (``visible_to``). The queries
live on ``Board`` and are shared by the charts that need them, so the whole
page costs the same few queries however many orders there are:

1. the thresholds (``RiskSettings``);
2. the open orders per provider, state and deadline band, with those over
   their state's SLA (money at risk, orders stuck, the scorecard);
3. the duplicate fees per day (losses);
4. auto-refunds of the last days, per provider and day (losses, scorecard);
5. live risk cases per rule and severity;
6. escalations per first-response class;
7. the providers on the board with their stage durations (``orders.durations``).

The second and the third read tallies that beat counts every minute
(``orders.tallies``): adding up every open order and every split group's
fees on each request does not fit at a million orders. The charts drawn
from them say as of when; the lists their numbers link to are live.

With the session, the person and the list of orders nearest their deadline
under the charts (and their risk cases), the page makes eleven queries.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from functools import cached_property
from urllib.parse import urlencode

from django.db.models import Count, Max, Sum
from django.db.models.functions import TruncDate
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from orders import tallies
from orders.choices import DEADLINE_AT_RISK_HOURS, FLOW_ORDER, Action, OrderState
from orders.durations import PROVIDER_STAGES, STAGE_ENDS, WINDOW
from orders.filtersets import AT_RISK_BANDS, AT_RISK_Q, AT_RISK_STATES, LOOKBACK_DAYS, deadline_band_q, lookback_start
from orders.models import DuplicateFeeTally, OpenOrderTally, Order, StageDuration
from portal.choices import OrganisationKind
from portal.formatting import duration, money
from portal.models import Organisation
from risks.choices import Rule, Severity
from risks.filtersets import LIVE, RESPONSES, response_q, with_first_response
from risks.models import Escalation, RiskCase, RiskSettings
from risks.rules import RULES

S = OrderState
# Colours that mean the same on every chart (Bootstrap's warning, danger, dark, success, primary).
TONES = {
    Severity.MEDIUM: "#f59f00",
    Severity.HIGH: "#dc3545",
    Severity.CRITICAL: "#212529",
    "waiting": "#1c7ed6",
    "overdue": "#dc3545",
    "in_time": "#2f9e44",
    "late": "#f59f00",
}
# What a series counts, and so how its numbers are written and drawn.
COUNT, MONEY, DURATION = "count", "money", "duration"
# The states whose SLA is the provider's (the ``stalled`` rule's owners).
PROVIDER_STATES = [state for state in FLOW_ORDER if RULES[Rule.STALLED].owner.get(state) == OrganisationKind.PROVIDER]


@dataclass
class Series:
    """One measure per category: its numbers, and the list behind each (or ``None``)."""

    key: str
    label: str
    kind: str
    values: list
    links: list
    # Drawn in the chart; the others are in its table (and its tooltip) only.
    plotted: bool = True
    # The colour it is drawn in (one, or one per category); the chart's palette otherwise.
    tone: str | list | None = None

    def display(self, index) -> str:
        """The value at ``index`` as a person reads it."""
        value = self.values[index]
        if value is None:
            return "—"
        if self.kind == MONEY:
            return money(value)
        if self.kind == DURATION:
            return duration(value)
        return str(value)

    def raw(self, index):
        """The value at ``index`` for a spreadsheet: money with two decimals, durations in hours."""
        value = self.values[index]
        if value is None:
            return ""
        if self.kind == MONEY:
            return f"{Decimal(value):.2f}"
        if self.kind == DURATION:
            return f"{value.total_seconds() / 3600:.2f}"
        return value

    def plot(self, index):
        value = self.values[index]
        if value is None:
            return None
        if self.kind == MONEY:
            return float(value)
        if self.kind == DURATION:
            return round(value.total_seconds() / 3600, 2)
        return value


@dataclass
class Chart:
    """A chart and its numbers: ``labels`` are its categories, each series
    holds one value (and one link) per category."""

    slug: str
    title: str
    description: str
    category: str
    labels: list
    series: list
    # How the plotted series are drawn: "bar" (categories along the bottom)
    # or "hbar" (down the side), stacked or side by side, and in what unit.
    shape: str = "bar"
    stacked: bool = False
    unit: str = COUNT
    note: str = ""
    extra: dict = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """The table: per category, its label and each series' value with its link."""
        return [
            {
                "label": label,
                "cells": [{"text": s.display(i), "link": s.links[i]} for s in self.series],
            }
            for i, label in enumerate(self.labels)
        ]

    def csv_header(self) -> list[str]:
        units = {MONEY: _("%(label)s (CNY)"), DURATION: _("%(label)s (hours)")}
        return [str(self.category)] + [units.get(s.kind, "%(label)s") % {"label": s.label} for s in self.series]

    def csv_rows(self) -> list[list]:
        return [[label, *(s.raw(i) for s in self.series)] for i, label in enumerate(self.labels)]

    def plot(self) -> dict:
        """What ``static/portal/charts.js`` draws: plain JSON."""
        plotted = [s for s in self.series if s.plotted]
        others = [s for s in self.series if not s.plotted]
        return {
            "shape": self.shape,
            "stacked": self.stacked,
            "unit": self.unit,
            "axis": {MONEY: _("CNY"), DURATION: _("Hours"), COUNT: _("Number")}[self.unit],
            "labels": [str(label) for label in self.extra.get("axis_labels", self.labels)],
            "datasets": [
                {
                    "label": str(s.label),
                    "data": [s.plot(i) for i in range(len(self.labels))],
                    "display": [s.display(i) for i in range(len(self.labels))],
                    "links": s.links,
                    "tone": s.tone,
                }
                for s in plotted
            ],
            # How the tooltip names a value, and the lines it adds for each
            # category: the series not drawn.
            "pair": _("%(label)s: %(value)s"),
            "details": [
                [_("%(label)s: %(value)s") % {"label": s.label, "value": s.display(i)} for s in others]
                for i in range(len(self.labels))
            ],
        }


def _url(name, **params) -> str:
    query = urlencode(
        [(key, v) for key, value in params.items() for v in (value if isinstance(value, list) else [value])]
    )
    return f"{reverse(name)}?{query}"


def _orders(**params) -> str:
    return _url("orders:list", **params)


class Board:
    """One person's dashboard: their scope, the time, and the figures read
    for them (each query runs once, when a chart first needs it)."""

    def __init__(self, user, now=None):
        self.user = user
        self.organisation = user.organisation
        self.now = now or timezone.now()
        self.since = lookback_start(self.now)
        self.orders = Order.objects.visible_to(user)

    @cached_property
    def sla(self) -> dict:
        return RiskSettings.current().sla()

    @cached_property
    def tally(self) -> list[dict]:
        """Open orders per provider, state and deadline band, as last counted
        (``OpenOrderTally``): how many, their amount, how many over their
        state's SLA, and when they were counted."""
        return list(
            OpenOrderTally.objects.visible_to(self.user)
            .values("provider_id", "state", "band")
            .annotate(n=Sum("orders"), money=Sum("amount"), over=Sum("over_sla"), at=Max("computed_at"))
            .order_by()
        )

    @cached_property
    def open_rows(self) -> list[dict]:
        """Open orders per provider and state: how many, their amount, and how
        many are over their state's SLA (from ``tally``)."""
        rows = {}
        for row in self.tally:
            found = rows.setdefault(
                (row["provider_id"], row["state"]),
                {"provider_id": row["provider_id"], "state": row["state"], "n": 0, "money": Decimal(0), "over": 0},
            )
            found["n"] += row["n"]
            found["money"] += row["money"] or 0
            found["over"] += row["over"]
        return list(rows.values())

    @cached_property
    def band_rows(self) -> dict:
        """Orders at risk (open, not yet delivered) per deadline band: how many,
        and their amount (from ``tally``)."""
        bands = {code: {"n": 0, "money": Decimal(0)} for code, *_rest in AT_RISK_BANDS}
        for row in self.tally:
            # A band no longer drawn (counted before a change of bands) waits for the next count.
            if row["state"] in AT_RISK_STATES and row["band"] in bands:
                bands[row["band"]]["n"] += row["n"]
                bands[row["band"]]["money"] += row["money"] or 0
        return bands

    @cached_property
    def counted_at(self):
        """When the open orders were last counted (``None``: never, or none in scope)."""
        return max((row["at"] for row in self.tally), default=None)

    @cached_property
    def loss_rows(self) -> list[dict]:
        """Orders auto-refunded since ``since``, per provider and local day."""
        return list(
            self.orders.filter(state=S.AUTO_REFUNDED, state_changed_at__gte=self.since)
            .annotate(day=TruncDate("state_changed_at"))
            .values("provider_id", "day")
            .annotate(n=Count("state"), money=Sum("amount"))
            .order_by()
        )

    @cached_property
    def fee_rows(self) -> dict:
        """Fees charged beyond correct handling since ``since``, per local day,
        as last counted (``DuplicateFeeTally``): the orders charged them, how
        much, and when they were counted."""
        rows = DuplicateFeeTally.objects.visible_to(self.user).filter(day__gte=timezone.localdate(self.since))
        return {
            row["day"]: {"n": row["orders"], "money": row["amount"], "at": row["computed_at"]}
            for row in rows.values("day", "orders", "amount", "computed_at")
        }

    @cached_property
    def case_rows(self) -> dict:
        rows = (
            RiskCase.objects.visible_to(self.user)
            .live()
            .values("rule", "severity")
            .annotate(n=Count("pk"), money=Sum("money_at_risk"))
            .order_by()
        )
        return {(row["rule"], row["severity"]): row for row in rows}

    @cached_property
    def escalation_counts(self) -> dict:
        escalations = with_first_response(Escalation.objects.visible_to(self.user))
        classes = {code: Count("pk", filter=response_q(code, self.now)) for code, _label in RESPONSES}
        return escalations.aggregate(**classes)

    @cached_property
    def providers(self) -> dict:
        """The providers on the board, by id: every provider for the platform,
        itself for a provider, those handling the merchant's orders (open, or
        lost lately) for a merchant; each with its name, code and stage
        durations (``times``: stage → ``StageDuration``), in one query."""
        providers = Organisation.objects.filter(kind=OrganisationKind.PROVIDER)
        if self.organisation.kind == OrganisationKind.PROVIDER:
            providers = providers.filter(pk=self.organisation.pk)
        elif self.organisation.kind == OrganisationKind.MERCHANT:
            providers = providers.filter(pk__in={row["provider_id"] for row in self.open_rows + self.loss_rows})
        rows = providers.values(
            "pk",
            "code",
            "name",
            *(f"stage_durations__{name}" for name in ("stage", "median", "p90", "samples", "window", "computed_at")),
        )
        found = {}
        for row in rows:
            provider = found.setdefault(row["pk"], {"code": row["code"], "name": row["name"], "times": {}})
            if row["stage_durations__stage"]:
                provider["times"][row["stage_durations__stage"]] = StageDuration(
                    provider_id=row["pk"],
                    **{name: row[f"stage_durations__{name}"] for name in ("stage", "median", "p90", "samples")},
                    window=row["stage_durations__window"],
                    computed_at=row["stage_durations__computed_at"],
                )
        return found

    def near_deadline(self):
        """Open orders not yet delivered whose deadline is within
        ``DEADLINE_AT_RISK_HOURS`` (passed ones included): the list under the charts."""
        soon = self.now + timedelta(hours=DEADLINE_AT_RISK_HOURS)
        return self.orders.filter(AT_RISK_Q, auto_confirm_at__lte=soon)

    def days(self) -> list:
        today = timezone.localdate(self.now)
        return [today - timedelta(days=n) for n in range(LOOKBACK_DAYS - 1, -1, -1)]


def refresh_tallies(now=None) -> dict:
    """Count again what the dashboard reads from tallies (``orders.tallies``),
    with the thresholds in force, the deadline bands and the window of the
    charts. Beat runs it every minute (``portal.tasks.refresh_dashboard_tallies``)."""
    now = now or timezone.now()
    bands = {code: deadline_band_q(code, now) for code, *_rest in AT_RISK_BANDS}
    return tallies.refresh(now, sla=RiskSettings.current().sla(), bands=bands, since=lookback_start(now))


def counted(when, now=None) -> str:
    """When a tallied figure was counted, as a person reads it: the time, and
    the day too if it was not today."""
    local = timezone.localtime(when)
    if local.date() != timezone.localdate(now or timezone.now()):
        return local.strftime("%Y-%m-%d %H:%M")
    return local.strftime("%H:%M")


def as_of(when, now=None) -> str:
    """The note of a chart drawn from a tally: as of when it was counted."""
    return _("As of %(when)s.") % {"when": counted(when, now)} if when else ""


def money_at_risk(board) -> Chart:
    """Open orders not yet delivered, by hours left to their deadline: how many, and their amount."""
    codes = [code for code, *_rest in AT_RISK_BANDS]
    counts = {code: board.band_rows[code]["n"] for code in codes}
    amounts = {code: board.band_rows[code]["money"] for code in codes}
    links = [_orders(at_risk=code) for code in codes]
    return Chart(
        slug="money-at-risk",
        title=_("Money at risk by hours to the deadline"),
        description=_("Open orders not yet delivered to the buyer: at the deadline they are refunded."),
        category=_("Hours to the deadline"),
        labels=[str(label) for _code, label, *_rest in AT_RISK_BANDS],
        series=[
            Series("orders", _("Orders"), COUNT, [counts[c] for c in codes], links, plotted=False),
            Series("money", _("Money at risk"), MONEY, [amounts[c] for c in codes], links),
        ],
        unit=MONEY,
        note=as_of(board.counted_at, board.now),
    )


def cases_by_rule(board) -> Chart:
    """Risk cases not yet resolved, by rule and severity."""
    rules = list(Rule)
    series = []
    for severity in Severity:
        counts = [board.case_rows.get((rule, severity), {}).get("n", 0) for rule in rules]
        links = [_url("risks:cases", status=LIVE, rule=rule, severity=severity) for rule in rules]
        series.append(Series(severity.value, str(severity.label), COUNT, counts, links, tone=TONES[severity]))
    totals, amounts = [], []
    for rule in rules:
        rows = [row for (code, _severity), row in board.case_rows.items() if code == rule]
        totals.append(sum(row["n"] for row in rows))
        amounts.append(sum((row["money"] or 0 for row in rows), Decimal("0")))
    links = [_url("risks:cases", status=LIVE, rule=rule) for rule in rules]
    series += [
        Series("cases", _("All cases"), COUNT, totals, links, plotted=False),
        Series("money", _("Money at risk"), MONEY, amounts, links, plotted=False),
    ]
    return Chart(
        slug="cases",
        title=_("Open risk cases by rule and severity"),
        description=_("Cases open, acknowledged or escalated: not yet resolved."),
        category=_("Rule"),
        labels=[str(rule.label) for rule in rules],
        series=series,
        shape="hbar",
        stacked=True,
    )


def stuck_by_state(board) -> Chart:
    """Open orders in each state, and those in it longer than its SLA."""
    states = list(FLOW_ORDER)
    counts, over = defaultdict(int), defaultdict(int)
    for row in board.open_rows:
        counts[row["state"]] += row["n"]
        over[row["state"]] += row["over"]
    limits = [board.sla.get(state) for state in states]
    return Chart(
        slug="stuck",
        title=_("Orders per state against its SLA"),
        description=_("Open orders in each state, and how many have been in it longer than the state's SLA."),
        category=_("State"),
        labels=[str(state.label) for state in states],
        shape="hbar",
        series=[
            Series(
                "orders", _("In this state"), COUNT, [counts[s] for s in states], [_orders(state=s) for s in states]
            ),
            Series(
                "over",
                _("Over the SLA"),
                COUNT,
                [over[s] if limit else None for s, limit in zip(states, limits, strict=True)],
                [_orders(state=s, over_sla="yes") if limit else None for s, limit in zip(states, limits, strict=True)],
            ),
            Series("sla", _("SLA"), DURATION, limits, [None] * len(states), plotted=False),
        ],
        note=as_of(board.counted_at, board.now),
    )


def losses_by_day(board) -> Chart:
    """Money lost on each of the last days: orders auto-refunded at their
    deadline, and fees charged beyond what correct handling would charge."""
    days = board.days()
    refunds = defaultdict(lambda: {"n": 0, "money": Decimal("0")})
    for row in board.loss_rows:
        refunds[row["day"]]["n"] += row["n"]
        refunds[row["day"]]["money"] += row["money"] or 0
    fees = board.fee_rows

    def refund_link(day):
        if not refunds[day]["n"]:
            return None
        return _orders(state=S.AUTO_REFUNDED, ended_from=day.isoformat(), ended_to=day.isoformat())

    def fee_link(day):
        return _orders(duplicate_fee_on=day.isoformat(), finished="on") if day in fees else None

    refund_links = [refund_link(day) for day in days]
    fee_links = [fee_link(day) for day in days]
    return Chart(
        slug="losses",
        title=_("Losses per day, last %(days)d days") % {"days": LOOKBACK_DAYS},
        description=_(
            "Orders auto-refunded because the deadline passed before delivery, and fees charged beyond what "
            "correct handling of split orders would have charged."
        ),
        category=_("Day"),
        labels=[day.isoformat() for day in days],
        series=[
            Series("refunds", _("Auto-refunded orders"), COUNT, [refunds[d]["n"] for d in days], refund_links, False),
            Series("refund_money", _("Auto-refunded"), MONEY, [refunds[d]["money"] for d in days], refund_links),
            Series(
                "fees",
                _("Orders with a duplicate fee"),
                COUNT,
                [fees.get(d, {}).get("n", 0) for d in days],
                fee_links,
                plotted=False,
            ),
            Series(
                "fee_money",
                _("Duplicate fees"),
                MONEY,
                [fees.get(d, {}).get("money") or Decimal("0") for d in days],
                fee_links,
            ),
        ],
        stacked=True,
        unit=MONEY,
        note=_duplicate_fees_as_of(fees, board.now),
        extra={"axis_labels": [day.strftime("%m-%d") for day in days]},
    )


def _duplicate_fees_as_of(fees, now) -> str:
    when = max((row["at"] for row in fees.values()), default=None)
    return _("Duplicate fees as of %(when)s.") % {"when": counted(when, now)} if when else ""


def escalations(board) -> Chart:
    """Escalations against their first-response time: waiting (in time or
    overdue), and answered in time or late."""
    counts = board.escalation_counts
    return Chart(
        slug="escalations",
        title=_("Escalations: first response"),
        description=_("An operator must take an escalation within its first-response time."),
        category=_("First response"),
        labels=[str(label) for _code, label in RESPONSES],
        series=[
            Series(
                "escalations",
                _("Escalations"),
                COUNT,
                [counts[code] for code, _label in RESPONSES],
                [_url("risks:escalations", response=code) for code, _label in RESPONSES],
                tone=[TONES[code] for code, _label in RESPONSES],
            )
        ],
    )


def scorecard(board) -> Chart:
    """Per provider: open orders, those over a provider SLA, the losses of the
    last days, and the median and 90th percentile time of each stage."""
    open_orders, breaches = defaultdict(int), defaultdict(int)
    lost, lost_money = defaultdict(int), defaultdict(Decimal)
    for row in board.open_rows:
        open_orders[row["provider_id"]] += row["n"]
        if row["state"] in PROVIDER_STATES:
            breaches[row["provider_id"]] += row["over"]
    for row in board.loss_rows:
        lost[row["provider_id"]] += row["n"]
        lost_money[row["provider_id"]] += row["money"] or 0
    providers = sorted(board.providers.items(), key=lambda item: item[1]["code"])
    ids = [pk for pk, _provider in providers]
    codes = [provider["code"] for _pk, provider in providers]
    times = {(pk, stage): row for pk, provider in providers for stage, row in provider["times"].items()}
    computed_at = max((row.computed_at for row in times.values()), default=None)
    since = board.since.date().isoformat()
    loss_links = [
        _orders(provider=code, state=S.AUTO_REFUNDED, ended_from=since) if lost[pk] else None
        for pk, code in zip(ids, codes, strict=True)
    ]
    provider_states = [str(state) for state in PROVIDER_STATES]
    series = [
        Series(
            "open",
            _("Open orders"),
            COUNT,
            [open_orders[pk] for pk in ids],
            [_orders(provider=code) for code in codes],
            False,
        ),
        Series(
            "breaches",
            _("Over a provider SLA"),
            COUNT,
            [breaches[pk] for pk in ids],
            [_orders(provider=code, over_sla="yes", state=provider_states) for code in codes],
            False,
        ),
        Series("losses", _("Auto-refunded orders"), COUNT, [lost[pk] for pk in ids], loss_links, False),
        Series("lost", _("Auto-refunded"), MONEY, [lost_money[pk] for pk in ids], loss_links, False),
    ]
    for stage in PROVIDER_STAGES:
        step = Action(STAGE_ENDS[stage]).label
        medians = [times[pk, stage].median if (pk, stage) in times else None for pk in ids]
        p90s = [times[pk, stage].p90 if (pk, stage) in times else None for pk in ids]
        links = [_orders(provider=c, state=stage) for c in codes]
        series.append(Series(f"{stage}_median", _("%(step)s: median") % {"step": step}, DURATION, medians, links))
        series.append(
            Series(f"{stage}_p90", _("%(step)s: 90%%") % {"step": step}, DURATION, p90s, [None] * len(codes), False)
        )
    notes = []
    if board.counted_at:
        notes.append(_("Open orders as of %(when)s.") % {"when": counted(board.counted_at, board.now)})
    if computed_at:
        notes.append(
            _("Times per stage over the last %(days)d days, computed %(when)s.")
            % {"days": WINDOW.days, "when": timezone.localtime(computed_at).strftime("%Y-%m-%d %H:%M")}
        )
    return Chart(
        slug="providers",
        title=_("Provider scorecard"),
        description=_(
            "Each provider's open orders, those over a provider SLA, its losses of the last %(days)d days, and the "
            "median time of each stage (the bar) with its 90th percentile (in the table)."
        )
        % {"days": LOOKBACK_DAYS},
        category=_("Provider"),
        labels=[provider["name"] for _pk, provider in providers],
        series=series,
        shape="hbar",
        stacked=True,
        unit=DURATION,
        note=" ".join(notes),
    )


# Every chart, in the order of the page; the slug names its CSV.
CHARTS = {
    "money-at-risk": money_at_risk,
    "cases": cases_by_rule,
    "stuck": stuck_by_state,
    "losses": losses_by_day,
    "escalations": escalations,
    "providers": scorecard,
}


def headline(charts) -> dict:
    """The figures of the tiles above the charts, added up from the charts (no query of their own)."""
    orders, amounts = charts["money-at-risk"].series
    near = [
        i for i, (*_rest, until) in enumerate(AT_RISK_BANDS) if until is not None and until <= DEADLINE_AT_RISK_HOURS
    ]
    losses = {s.key: s.values for s in charts["losses"].series}
    cases = {s.key: s.values for s in charts["cases"].series}
    waiting = dict(zip([code for code, _label in RESPONSES], charts["escalations"].series[0].values, strict=True))
    return {
        "near": {
            "n": sum(orders.values[i] for i in near),
            "money": sum((amounts.values[i] for i in near), Decimal(0)),
            "note": charts["money-at-risk"].note,
        },
        "lost": {
            "refunds": sum(losses["refunds"]),
            "refund_money": sum(losses["refund_money"], Decimal(0)),
            "fee_money": sum(losses["fee_money"], Decimal(0)),
            "money": sum(losses["refund_money"], Decimal(0)) + sum(losses["fee_money"], Decimal(0)),
        },
        "cases": {"n": sum(cases["cases"]), "money": sum(cases["money"], Decimal(0))},
        "overdue": waiting["overdue"],
    }
