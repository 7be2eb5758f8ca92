"""What a replay of the risk rules found, as the platform's Replay page and
its downloads show it.

``risks.replay`` keeps its findings as JSON (``ReplayRun.report``, the shape
of ``Report.as_json``): codes, ISO times and hours. Here they are put into
words of the reader's language: each rule by its label, each outcome by
name, times in the portal's time zone, a share as "8 of 10 losses (80 %)".
A run outlives the code that wrote it, so a rule or a threshold since
retired is named as such, never by its code.
"""

from datetime import datetime, timedelta
from decimal import Decimal

from django.core.exceptions import FieldDoesNotExist
from django.db.models.fields.json import KeyTransform
from django.utils import timezone
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext, pgettext_lazy

from portal.dashboard import COUNT, DURATION, Chart, Series
from portal.formatting import duration
from risks import replay
from risks.choices import Rule
from risks.models import ReplayRun, RiskSettings

OUTCOMES = {
    replay.AUTO_REFUND: pgettext_lazy("loss", "Auto-refunded"),
    replay.DUPLICATE_FEE: pgettext_lazy("loss", "Duplicate fee"),
}
NOT_CAUGHT = gettext_lazy("Not caught")
# The earlier runs listed under a run.
RECENT = 10
HEADLINE_HOURS = int(replay.HEADLINE_LEAD.total_seconds() // 3600)


def rule_label(code: str) -> str:
    """A rule by its label; a rule no longer in the portal as such."""
    return str(Rule(code).label) if code in Rule.values else _("A rule no longer in use")


def outcome_label(code: str) -> str:
    return str(OUTCOMES[code]) if code in OUTCOMES else _("Another loss")


def period(run) -> str:
    """The replayed period as the command was given it: local days, the last
    one included (a date and time where the period does not fall on midnight)."""
    start, end = timezone.localtime(run.period_start), timezone.localtime(run.period_end)
    midnight = datetime.min.time()
    first = f"{start:%Y-%m-%d}" if start.time() == midnight else f"{start:%Y-%m-%d %H:%M}"
    last = f"{end - timedelta(days=1):%Y-%m-%d}" if end.time() == midnight else f"{end:%Y-%m-%d %H:%M}"
    return first if first == last else f"{first} – {last}"


def took(seconds: float) -> str:
    """How long the replay ran: seconds under an hour, then hours and minutes."""
    if seconds < 60:
        return _("%(seconds)s s") % {"seconds": f"{seconds:.1f}"}
    if seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        return _("%(minutes)sm %(seconds)ss") % {"minutes": minutes, "seconds": rest}
    return duration(timedelta(seconds=seconds))


def thresholds(run) -> list[dict]:
    """The thresholds the run changed: each by its name on ``RiskSettings``,
    its value in the run and the value in force now."""
    cfg = RiskSettings.current()
    found = []
    for name, value in sorted(run.thresholds.items()):
        try:
            model_field = RiskSettings._meta.get_field(name)
        except FieldDoesNotExist:
            found.append({"name": _("A threshold no longer in use"), "value": _amount(name, value), "now": "—"})
            continue
        found.append(
            {
                "name": capfirst(model_field.verbose_name),
                "value": _amount(name, value),
                "now": _amount(name, getattr(cfg, name)),
            }
        )
    return found


def _amount(name, value) -> str:
    if name.endswith("_hours"):
        return ngettext("%(n)s hour", "%(n)s hours", value) % {"n": value}
    return str(value)


def of_losses(part: int, total: int) -> str:
    """``part`` of ``total`` losses, in words with the share: "8 of 10 losses (80 %)"."""
    return ngettext(
        "%(part)s of %(total)s loss (%(percent)s %%)", "%(part)s of %(total)s losses (%(percent)s %%)", total
    ) % {"part": part, "total": total, "percent": round(100 * part / total)}


def _share(share, total) -> str:
    return of_losses(round(share * total), total) if total and share is not None else "—"


def headline(run) -> dict:
    """The figures above the chart: the losses and their amount, how many were
    caught before their deadline, and how many a day or more before it, with
    and without the forecast rule."""
    figures = run.report["headline"]
    total = figures["losses"]
    losses = run.report["losses"]
    return {
        "losses": total,
        "money": sum((Decimal(loss["money"]) for loss in losses), Decimal(0)),
        "by_outcome": [
            {"label": outcome_label(code), "n": n}
            for code in OUTCOMES
            if (n := sum(1 for loss in losses if loss["outcome"] == code))
        ],
        "caught": of_losses(figures["caught"], total) if total else "—",
        "early": _share(figures["share_24h"], total),
        "early_without_forecast": _share(figures["share_24h_without_forecast"], total),
        "forecast_rule": Rule.FORECAST_MISS.label,
    }


def lead_chart(run) -> Chart:
    """Per rule, the median time before the deadline of the losses it caught
    first (the bar); the cases it opened, its false alarms, those losses and
    the shortest lead in the table."""
    rows = run.report["rules"]
    count = len(rows)

    def span(hours):
        return None if hours is None else timedelta(hours=hours)

    def series(key, label, kind, values, plotted=False):
        return Series(key, label, kind, values, [None] * count, plotted)

    return Chart(
        slug="replay-lead",
        title=_("Lead time per rule"),
        description=_(
            "For each rule, the median time before the deadline at which it caught the losses it was the first "
            "to catch. The table adds the cases it opened, its false alarms (cases on orders that all finished "
            "well) and its shortest lead."
        ),
        category=_("Rule"),
        labels=[rule_label(row["rule"]) for row in rows],
        series=[
            series("median", _("Median lead"), DURATION, [span(r["median_lead_hours"]) for r in rows], True),
            series("least", _("Shortest lead"), DURATION, [span(r["least_lead_hours"]) for r in rows]),
            series("caught_first", _("Losses caught first"), COUNT, [r["caught_first"] for r in rows]),
            series("opened", _("Cases opened"), COUNT, [r["opened"] for r in rows]),
            series("false_alarms", _("False alarms"), COUNT, [r["false_alarms"] for r in rows]),
        ],
        shape="hbar",
        unit=DURATION,
    )


def _moment(text):
    return None if text is None else datetime.fromisoformat(text)


def losses(run) -> list[dict]:
    """The run's losses, by deadline, under the keys of ``replay.LOSS_COLUMNS``:
    outcomes and rules in words ("Not caught" for a loss no rule caught in
    time), times as aware datetimes, money as ``Decimal``, leads in hours."""
    return [
        {
            "order_no": loss["order_no"],
            "outcome": outcome_label(loss["outcome"]),
            "deadline": _moment(loss["deadline"]),
            "money": Decimal(loss["money"]),
            "caught_at": _moment(loss["caught_at"]),
            "rule": rule_label(loss["rule"]) if loss["rule"] else str(NOT_CAUGHT),
            "lead_hours": loss["lead_hours"],
            "rule_without_forecast": (
                rule_label(loss["rule_without_forecast"]) if loss["rule_without_forecast"] else str(NOT_CAUGHT)
            ),
            "lead_hours_without_forecast": loss["lead_hours_without_forecast"],
            "caught": bool(loss["rule"]),
            "caught_without_forecast": bool(loss["rule_without_forecast"]),
        }
        for loss in run.report["losses"]
    ]


def loss_file_rows(run):
    """The rows of the losses download, one per loss, in ``LOSS_COLUMNS`` order."""
    keys = [key for key, _label in replay.LOSS_COLUMNS]
    return ([row[key] for key in keys] for row in losses(run))


def recent():
    """The latest runs, newest first, with their headline figures read in the
    database (the losses of each run stay there)."""
    runs = (
        ReplayRun.objects.defer("report")
        .annotate(headline=KeyTransform("headline", "report"))
        .order_by("-finished_at", "-pk")[:RECENT]
    )
    return [
        {
            "pk": run.pk,
            "finished_at": run.finished_at,
            "period": period(run),
            "changed": len(run.thresholds),
            "losses": run.headline["losses"],
            "early": _share(run.headline["share_24h"], run.headline["losses"]),
        }
        for run in runs
    ]
