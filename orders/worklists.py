"""The provider's worklists (SPEC §6.1): which open orders wait for which step.

Each worklist that waits for a step of the provider names that step; its scan
station and its bulk action apply it (``orders.stations``)."""

from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils.translation import gettext_lazy as _

from orders.choices import Action, AppraisalResult, OrderState
from orders.models import OPEN_ORDERS, PENDING_SIGN_IN_Q

S = OrderState


@dataclass(frozen=True)
class Worklist:
    slug: str
    title: str
    condition: Q
    # The provider's step that takes an order off this list ("" when the
    # list waits for someone else: the courier, the platform).
    action: str = ""
    # Numbers a person scans or reads at this stage, shown as columns.
    numbers: tuple = ()
    # True when a scan of a number several orders share (one parcel holding a
    # split group) applies the step to each of them.
    whole_parcel: bool = False
    # Ticked rows (or all matching) can take the step at once: steps that
    # need no choice per order.
    bulk: bool = False
    # The list's orders have online waybills whose labels can be printed again.
    labels: bool = False
    # Orders the step may be taken on when scanned or ticked, when that is
    # wider than the list: a parcel in the provider's hands is there, even
    # before the carrier's delivery scan says so.
    accepts: Q | None = None
    # The list's orders can have a forecast (``orders.forecast``): they are
    # signed for. A list of orders not yet signed for shows no expected
    # delivery and does not read the figures.
    forecast: bool = True

    @property
    def takes(self) -> Q:
        """The orders this list's step may be taken on."""
        return self.accepts if self.accepts is not None else self.condition

    def label(self):
        """The step's name, for buttons."""
        return Action(self.action).label if self.action else ""


PENDING_SIGN_IN = "pending-sign-in"

WORKLISTS = (
    Worklist(
        PENDING_SIGN_IN,
        _("Pending sign-in"),
        PENDING_SIGN_IN_Q,
        action=Action.SIGN_IN,
        numbers=("inbound_tracking_no",),
        whole_parcel=True,
        bulk=True,
        accepts=Q(state__in=[S.INBOUND, S.ARRIVED]),
        forecast=False,
    ),
    Worklist("to-appraise", _("To appraise"), Q(state=S.SIGNED_IN), action=Action.APPRAISE),
    Worklist(
        "to-inspect",
        _("To inspect"),
        Q(state=S.APPRAISED) & ~Q(appraisal_result=AppraisalResult.NOT_REQUIRED),
        action=Action.INSPECT,
        bulk=True,
    ),
    Worklist("to-pack", _("To pack"), Q(state=S.INSPECTED), action=Action.PACK, bulk=True),
    Worklist(
        "to-ship",
        _("To ship (print waybill)"),
        (Q(state=S.PACKED) | Q(state=S.APPRAISED, appraisal_result=AppraisalResult.NOT_REQUIRED))
        & Q(flow_blocked=False),
        action=Action.PRINT_WAYBILL,
        bulk=True,
    ),
    Worklist("awaiting-pickup", _("Awaiting pickup"), Q(state=S.WAYBILL_PRINTED), numbers=("waybill_no",), labels=True),
    Worklist("blocked", _("Blocked"), Q(flow_blocked=True) & OPEN_ORDERS),
)
BY_SLUG = {w.slug: w for w in WORKLISTS}
STATIONS = {w.slug: w for w in WORKLISTS if w.action}


def counts(orders) -> dict[str, int]:
    """How many of ``orders`` wait in each worklist, in one query.

    Every worklist holds open orders only, so only those are counted: on
    PostgreSQL a provider's are read from the partial index
    ``order_provider_work`` alone, which holds every column the lists test.
    The cost follows the open work, not the years of finished orders, and the
    tabs refresh with the page without a counter to keep in step."""
    return orders.open().aggregate(**{w.slug: Count("state", filter=w.condition) for w in WORKLISTS})


def next_in(orders, worklist, after):
    """The order of ``worklist`` that comes after ``after`` by deadline (the
    lists' order), else the first one left; ``None`` when the list is empty."""
    waiting = orders.filter(worklist.condition).exclude(pk=after.pk).order_by("auto_confirm_at", "pk")
    later = Q(auto_confirm_at__gt=after.auto_confirm_at) | Q(auto_confirm_at=after.auto_confirm_at, pk__gt=after.pk)
    return waiting.filter(later).first() or waiting.first()
