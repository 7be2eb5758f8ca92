"""The provider's worklists (SPEC §6.1): which open orders wait for which step."""

from dataclasses import dataclass

from django.db.models import Count, Q
from django.utils.translation import gettext_lazy as _

from orders.choices import OPEN_STATES, AppraisalResult, OrderState

S = OrderState


@dataclass(frozen=True)
class Worklist:
    slug: str
    title: str
    condition: Q


PENDING_SIGN_IN = "pending-sign-in"

WORKLISTS = (
    Worklist(
        PENDING_SIGN_IN,
        _("Pending sign-in"),
        Q(state=S.ARRIVED) | Q(state=S.INBOUND, inbound_delivered_at__isnull=False),
    ),
    Worklist("to-appraise", _("To appraise"), Q(state=S.SIGNED_IN)),
    Worklist("to-inspect", _("To inspect"), Q(state=S.APPRAISED) & ~Q(appraisal_result=AppraisalResult.NOT_REQUIRED)),
    Worklist("to-pack", _("To pack"), Q(state=S.INSPECTED)),
    Worklist(
        "to-ship",
        _("To ship (print waybill)"),
        (Q(state=S.PACKED) | Q(state=S.APPRAISED, appraisal_result=AppraisalResult.NOT_REQUIRED))
        & Q(flow_blocked=False),
    ),
    Worklist("awaiting-pickup", _("Awaiting pickup"), Q(state=S.WAYBILL_PRINTED)),
    Worklist("blocked", _("Blocked"), Q(flow_blocked=True, state__in=sorted(OPEN_STATES))),
)
BY_SLUG = {w.slug: w for w in WORKLISTS}


def counts(orders) -> dict[str, int]:
    """How many of ``orders`` wait in each worklist, in one query."""
    return orders.aggregate(**{w.slug: Count("pk", filter=w.condition) for w in WORKLISTS})
