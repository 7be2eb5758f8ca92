"""How the screens write values for people: money, spans of time, deadlines,
stored codes and event parameters, in the active language. The template tag
library ``portal`` offers these to templates; tables call them directly."""

from datetime import timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django.utils import timezone
from django.utils.html import json_script
from django.utils.translation import gettext as _

from orders.choices import (
    DEADLINE_AT_RISK_HOURS,
    DEADLINE_NEAR_HOURS,
    FLOW_ORDER,
    OPEN_STATES,
    OrderState,
    describe_parameters,
)
from orders.forecast import FORECAST_STATES
from portal.models import NotificationKind
from risks.choices import EscalationCategory, EscalationStatus, Rule
from risks.choices import Severity as CaseSeverity


def money(value) -> str:
    """CNY as merchants read it in either language: ``¥1,234.50``."""
    if value is None or value == "":
        return ""
    try:
        amount = Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, TypeError, ValueError):
        return ""
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,.2f}"


def duration(delta: timedelta) -> str:
    """A span as days and hours (or minutes when under an hour)."""
    seconds = max(int(delta.total_seconds()), 0)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return _("%(days)sd %(hours)sh") % {"days": days, "hours": hours}
    if hours:
        return _("%(hours)sh %(minutes)sm") % {"hours": hours, "minutes": rest // 60}
    return _("%(minutes)sm") % {"minutes": rest // 60}


def countdown_labels():
    """The countdown wording for the page's script, in the active language."""
    labels = {
        "d": _("%(days)sd %(hours)sh"),
        "h": _("%(hours)sh %(minutes)sm"),
        "m": _("%(minutes)sm"),
        "left": _("%(span)s left"),
        "overdue": _("overdue by %(span)s"),
    }
    return json_script(labels, "countdown-labels")


def countdown(deadline, state=None) -> str:
    """Time left before the automatic confirmation deadline, or how long ago it passed."""
    if state is not None and state not in OPEN_STATES:
        return timezone.localtime(deadline).strftime("%Y-%m-%d %H:%M")
    left = deadline - timezone.now()
    if left.total_seconds() <= 0:
        return _("overdue by %(span)s") % {"span": duration(-left)}
    return _("%(span)s left") % {"span": duration(left)}


def deadline_class(deadline, state) -> str:
    """Row highlight: red when the deadline is at risk, amber when it is near,
    for orders not yet delivered (``orders.choices.DEADLINE_*_HOURS``)."""
    if state not in OPEN_STATES or state == OrderState.DELIVERED:
        return ""
    hours = (deadline - timezone.now()).total_seconds() / 3600
    if hours < DEADLINE_AT_RISK_HOURS:
        return "table-danger"
    if hours < DEADLINE_NEAR_HOURS:
        return "table-warning"
    return ""


def deadline_css(order) -> str:
    """The text colour of an order's deadline, as ``deadline_class`` highlights its row."""
    return {"table-danger": "text-danger fw-semibold", "table-warning": "text-warning-emphasis fw-semibold"}.get(
        deadline_class(order.auto_confirm_at, order.state), ""
    )


def forecast_against_deadline(forecast) -> str:
    """How an order's expected delivery (``orders.forecast.Forecast``) stands
    against its deadline: "12h 0m before the deadline", or after it."""
    if forecast.late:
        return _("%(span)s after the deadline — forecast to miss") % {"span": duration(-forecast.slack)}
    return _("%(span)s before the deadline") % {"span": duration(forecast.slack)}


def forecast_basis(forecast) -> str:
    """What a forecast rests on, for the reader to judge how far to trust it."""
    if forecast.own:
        return _("9 in 10 of this provider's recent orders (%(n)s) took no longer") % {"n": forecast.samples}
    return _("From all providers' figures: this provider has too few recent orders")


def why_no_forecast(order) -> str:
    """Why an order has no forecast, in words; "" when there is nothing to
    forecast (delivered or finished)."""
    if order.state in FORECAST_STATES:
        return _("too few recent orders to forecast it yet")
    if order.state in OPEN_STATES and FLOW_ORDER.index(order.state) < FLOW_ORDER.index(OrderState.SIGNED_IN):
        return _("forecast from sign-in on")
    return ""


# The kinds of stored code ``choice_label`` puts into words.
CODE_KINDS = {
    "rule": Rule,
    "severity": CaseSeverity,
    "state": OrderState,
    "category": EscalationCategory,
    "status": EscalationStatus,
    "kind": NotificationKind,
}


def choice_label(value, kind) -> str:
    """The words for a stored code, in the active language: ``{{ c.rule|choice_label:"rule" }}``."""
    choices = CODE_KINDS[kind]
    try:
        return str(choices(value).label)
    except ValueError:
        return str(value)


def event_parameters(event) -> list[tuple[str, str]]:
    """An order event's parameters as ``(label, value)`` pairs in the reader's
    language: ``{% for label, value in event|event_parameters %}``."""
    return describe_parameters(event.payload.get("params") or {})


def translated(text) -> str:
    """Stored text in the reader's language when it is one of the portal's own
    messages (notes the sweep wrote); what people wrote is shown as they wrote it."""
    return _(text) if text else text
