"""A worklist's step applied to orders found by a scanned number, or ticked in
a list (SPEC §6.1: scan stations and bulk actions).

Each order goes through ``workflow.perform`` on its own, so one order's
refusal never stops the others and nothing is half-applied. The answer is
one ``Line`` per order in the person's language. A step is taken only on an
order still waiting for it, and the workflow decides on the locked row: a
repeated scan, or two people scanning one parcel at once, applies it once
and reports the repeat as done already.
"""

from dataclasses import dataclass

from django.db.models import BooleanField, ExpressionWrapper
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from orders import errors, workflow
from orders.choices import FLOW_ORDER, TERMINAL_STATES, Action, AppraisalResult, OrderState
from orders.filtersets import SUFFIX_MIN_LENGTH, exact, search
from portal.choices import EventSource

# How many orders one scanned number may name before the person is asked
# for a more precise number (a trade of a few split orders is normal).
MAX_MATCHES = 20
MAX_CODE = 64

DONE = "done"
ALREADY = "already"
NOT_READY = "not_ready"
FINISHED = "finished"
BLOCKED = "blocked"
REFUSED = "refused"
NOT_FOUND = "not_found"
AMBIGUOUS = "ambiguous"
NEEDS_CHOICE = "needs_choice"
# Outcomes that leave the order as the person wanted it.
SUCCESSFUL = frozenset({DONE, ALREADY})

_DONE = {
    Action.SIGN_IN: gettext_lazy("Signed in."),
    Action.APPRAISE: gettext_lazy("Appraised: %(result)s."),
    Action.INSPECT: gettext_lazy("Inspected."),
    Action.PACK: gettext_lazy("Packed."),
    Action.PRINT_WAYBILL: gettext_lazy("Online waybill %(waybill)s printed."),
}
_ALREADY = {
    Action.SIGN_IN: gettext_lazy("Already signed in (now “%(state)s”)."),
    Action.APPRAISE: gettext_lazy("Already appraised (now “%(state)s”)."),
    Action.INSPECT: gettext_lazy("Already inspected (now “%(state)s”)."),
    Action.PACK: gettext_lazy("Already packed (now “%(state)s”)."),
    Action.PRINT_WAYBILL: gettext_lazy("Online waybill %(waybill)s was printed already (now “%(state)s”)."),
}


@dataclass(frozen=True)
class Line:
    """What happened to one order (or to a number that found none)."""

    outcome: str
    message: str
    order_no: str = ""
    waybill_no: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in SUCCESSFUL


def _target(action) -> str:
    """The state the step leads to, read from the transition table."""
    return next(m.target for m in workflow.TRANSITIONS if m.action == action and m.target != m.source)


def _is_past(order, action) -> bool:
    target = _target(action)
    return order.state in FLOW_ORDER and FLOW_ORDER.index(order.state) >= FLOW_ORDER.index(target)


def matching(orders, worklist, code) -> list:
    """Up to ``MAX_MATCHES + 1`` orders of ``orders`` with ``code`` as a number
    (trimmed, any case), nearest deadline first, marked ``in_stage``; failing
    that, those whose number ends in it, for a person who types the last
    digits of a label."""
    finders = [exact] + ([search] if len(code.strip()) >= SUFFIX_MIN_LENGTH else [])
    for find in finders:
        found = list(at_stage(find(orders, code), worklist).order_by("auto_confirm_at", "pk")[: MAX_MATCHES + 1])
        if found:
            return found
    return []


def at_stage(orders, worklist):
    """``orders`` with ``in_stage``: whether each waits in ``worklist`` now."""
    return orders.annotate(in_stage=ExpressionWrapper(worklist.takes, output_field=BooleanField()))


def describe(order, worklist) -> Line | None:
    """Why ``order`` cannot take ``worklist``'s step now, or ``None`` when it can.

    ``order`` comes from ``at_stage``; one without ``in_stage`` is taken as
    read from the worklist itself."""
    state = OrderState(order.state).label
    if order.state in TERMINAL_STATES:
        message = _("The order is finished (“%(state)s”); nothing to do.") % {"state": state}
        return Line(FINISHED, message, order.order_no)
    if order.flow_blocked:
        message = _("Blocked (%(stage)s): the platform is handling it. Never ship it offline.") % {
            "stage": order.get_blocked_stage_display()
        }
        if order.blocked_reason:
            message += " " + order.blocked_reason[:200]
        return Line(BLOCKED, message, order.order_no)
    if _is_past(order, worklist.action):
        text = _ALREADY[worklist.action] % {"state": state, "waybill": order.waybill_no}
        return Line(ALREADY, str(text), order.order_no, order.waybill_no)
    if not getattr(order, "in_stage", True):
        return Line(
            NOT_READY,
            _("Not waiting for “%(step)s”: it is “%(state)s”.") % {"step": worklist.label(), "state": state},
            order.order_no,
        )
    return None


def apply(orders, worklist, user, params=None) -> list[Line]:
    """Take ``worklist``'s step on each of ``orders`` (already in the user's scope)."""
    params = params or {}
    actor = workflow.Actor.of_user(user, EventSource.WEB)
    lines = []
    for order in orders:
        refusal = describe(order, worklist)
        if refusal is not None:
            lines.append(refusal)
            continue
        try:
            done = workflow.perform(order, worklist.action, actor, expected_version=None, **params)
        except errors.NotAllowed:
            lines.append(_not_found(order.order_no))
        except errors.WorkflowError as exc:
            order.refresh_from_db()
            # Someone (or the same scan a moment ago) took the step first.
            lines.append(describe(order, worklist) or Line(REFUSED, exc.message, order.order_no))
        else:
            text = _DONE[worklist.action] % {
                "result": AppraisalResult(done.appraisal_result).label if done.appraisal_result else "",
                "waybill": done.waybill_no,
            }
            lines.append(Line(DONE, str(text), done.order_no, done.waybill_no))
    return lines


def _not_found(code) -> Line:
    # Out of scope reads the same as not there at all (SPEC §1).
    return Line(NOT_FOUND, _("No order of yours has the number %(code)s.") % {"code": code})


def scan(visible, worklist, user, code, params=None) -> list[Line]:
    """Apply ``worklist``'s step to the order a scanned ``code`` names.

    ``visible`` is the user's scoped queryset. A number several orders share
    applies to each of them at a stage that handles whole parcels (sign-in);
    elsewhere the one order waiting at this stage is taken, and more than one
    asks for the order number instead.
    """
    code = code.strip()[:MAX_CODE]
    if not code:
        return []
    if worklist.action == Action.APPRAISE and not (params or {}).get("result"):
        return [Line(NEEDS_CHOICE, _("Choose the appraisal result before scanning."))]
    found = matching(visible, worklist, code)
    if not found:
        return [_not_found(code)]
    if len(found) > MAX_MATCHES:
        return [Line(AMBIGUOUS, _("Too many orders have the number %(code)s; scan the order number.") % {"code": code})]
    waiting = [o for o in found if describe(o, worklist) is None]
    if len(waiting) > 1 and not worklist.whole_parcel:
        return [
            Line(
                AMBIGUOUS,
                _("%(n)d orders at this stage have the number %(code)s; scan the order number instead.")
                % {"n": len(waiting), "code": code},
            )
        ]
    if waiting:
        return apply(waiting, worklist, user, params)
    return [describe(o, worklist) for o in found]
