"""Risk cases that cannot wait for the next sweep: they open, close or
escalate in the same transaction as the workflow step that caused them."""

from django.utils import timezone
from django.utils.translation import gettext as _

from orders.choices import ESCALATING_OUTCOMES, Action, VerifyOutcome
from orders.models import Order
from risks import cases, rules, sweep
from risks.choices import EscalationCategory, Resolution, Rule
from risks.models import RiskCase, RiskSettings

OPEN_AT_ONCE = {Action.REPORT_BLOCKED: Rule.FLOW_BLOCKED, Action.OFFLINE_SHIPMENT: Rule.OFFLINE_SHIPMENT}


def on_step(order, event, actor):
    """Called by the workflow after every step, inside its transaction."""
    rule = OPEN_AT_ONCE.get(event.action)
    if rule is not None:
        now = timezone.now()
        ctx = rules.Context.build(now, RiskSettings.current())
        hits = rules.RULES[rule](ctx, Order.objects.filter(pk=order.pk))
        sweep.open_hits(rule, hits, now)
    elif event.action == Action.UNBLOCK:
        _clear(order, Rule.FLOW_BLOCKED)
    elif event.action == Action.VERIFY_PENDING:
        _verified(order, event, actor)


def _live(order, rule):
    return RiskCase.objects.live().filter(rule=rule, subject=f"order:{order.pk}").select_related("order", "owner")


def _clear(order, rule):
    rows = list(_live(order, rule).values("pk", "rule", "subject", "fingerprint"))
    sweep.resolve_rows(rows, Resolution.CONDITION_CLEARED, timezone.now())


def _verified(order, event, actor):
    """The provider recorded why a parcel is unsigned: that answers the case;
    "cannot determine" and "system refuses" go to the platform at once."""
    outcome = event.payload["params"]["outcome"]
    note = event.payload["params"].get("note", "")
    text = VerifyOutcome(outcome).label + (f": {note}" if note else "")
    case = _live(order, Rule.PENDING_SIGN_IN).first()
    if outcome in ESCALATING_OUTCOMES:
        reason = _("Pending sign-in verified as “%(outcome)s”.") % {"outcome": text}
        if case is not None:
            cases.escalate(case, actor, reason)
        else:
            cases.escalate_order(order, actor, reason, category=EscalationCategory.SIGN_IN)
    elif case is not None:
        cases.resolve(case, actor, _("Verified: %(outcome)s") % {"outcome": text})
