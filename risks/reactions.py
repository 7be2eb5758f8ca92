"""Risk cases that cannot wait for the next sweep: they open, close or
escalate in the same transaction as the workflow step (or the merchant's
split choice) that caused them.

The sweep stays the safety net: what a step misses (a deadline applied
set-wise, a threshold passing with no step at all), the next sweep finds.
"""

import dataclasses
import functools

from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from orders import splits, workflow
from orders.choices import ESCALATING_OUTCOMES, TERMINAL_STATES, Action, SplitChoice, VerifyOutcome
from orders.models import Order
from portal.kept import Kept
from risks import cases, rules, sweep
from risks.choices import GROUP_RULES, CaseEventKind, EscalationCategory, Resolution, Rule
from risks.models import RiskCase, RiskSettings

# The steps that are themselves a risk (``RuleSpec.opened_by``): their case opens with them.
OPEN_AT_ONCE = {spec.opened_by: code for code, spec in rules.RULES.items() if spec.opened_by}
# System notes are stored as their source text and translated when shown.
CLEARED_BY_STEP = gettext_noop("A step on the order cleared the condition; the case closed with it.")
FINISHED = gettext_noop("The order is finished; the case stays on record with the money that was at risk.")


def on_steps(steps, actor):
    """``on_step`` for many steps at once (``workflow.perform_set``, a carrier's
    batch): the live cases about all their orders, split groups' included,
    are found in one query, and ``on_step`` runs only for a step that opens
    or answers a case itself or whose order has a live case; for any other
    it would find no case and do nothing. They share one sweep context: the
    thresholds, the platform and the forecasts are read once for the set."""
    context = functools.cache(_context)
    orders = [order for order, _event, _params in steps]
    own_cases = Q(order_id__in=[o.pk for o in orders])
    group_cases = Q(rule__in=sorted(GROUP_RULES), trade_no__in={o.trade_no for o in orders})
    found = RiskCase.objects.live().filter(own_cases | group_cases)
    own, groups = {}, set()
    for row in found.values("pk", "rule", "subject", "fingerprint", "order_id", "trade_no", "sku"):
        own.setdefault(row["order_id"], []).append(row)
        if row["rule"] in GROUP_RULES:
            groups.add((row["trade_no"], row["sku"]))
    # Orders whose own cases only may have cleared are asked together; a step
    # that opens or answers a case, or an order with a split group's case,
    # is taken one by one as ``on_step`` takes it.
    plain = []
    for order, event, params in steps:
        if event.action in OPEN_AT_ONCE or event.action == Action.VERIFY_PENDING:
            on_step(order, event, actor, params, context=context)
        elif (order.trade_no, order.sku) in groups:
            _resolve_cleared(order, context=context)
        elif order.pk in own:
            plain.append(order)
    if plain:
        _clear({order: own[order.pk] for order in plain}, context=context)


@workflow.set_wise(on_steps)
def on_step(order, event, actor, params, *, context=None):
    """Called by the workflow after every step (one of ``workflow.REACTIONS``),
    inside its transaction, with the step's cleaned ``params`` (and, from
    ``on_steps``, the set's shared ``context``):

    1. a step that is itself a risk (a blocked flow, an offline scan) opens its case;
    2. a verification of a pending parcel answers (or escalates) its case;
    3. every live case about the order whose condition the step removed
       resolves now, not at the next sweep.
    """
    context = context or _context
    rule = OPEN_AT_ONCE.get(event.action)
    if rule is not None:
        ctx = context()
        hits = rules.RULES[rule].evaluate(ctx, Order.objects.filter(pk=order.pk))
        sweep.open_hits(rule, hits, ctx.now)
    elif event.action == Action.VERIFY_PENDING:
        _verified(order, actor, params)
    # A verification answers (or escalates) its case itself: it is the
    # person's answer, not a condition that went away.
    keep = {Rule.PENDING_SIGN_IN} if event.action == Action.VERIFY_PENDING else set()
    _resolve_cleared(order, keep=keep, context=context)


def _context() -> rules.Context:
    """What the rules need to be asked now: the time, the thresholds, the platform."""
    return rules.Context.build(timezone.now(), RiskSettings.current())


def _live(order, rule):
    live = RiskCase.objects.live().filter(rule=rule, subject=rules.order_subject(order.pk))
    return live.select_related("order", "owner")


def _resolve_cleared(order, keep=(), only=None, context=_context):
    """Ask each rule with a live case about ``order`` whether it still holds,
    for this order (or its split group) alone, and close the cases it does not
    (those of the rules in ``keep`` aside; of the rules in ``only`` alone, when
    given)."""
    shape = (tuple(sorted(keep)), None if only is None else tuple(sorted(only)))
    live = _LIVE_ABOUT.rows((order.pk, order.trade_no, order.sku), shape)
    if live:
        grouped = any(rules.RULES[row["rule"]].group for row in live)
        _clear({order: live}, group=(order.trade_no, order.sku) if grouped else None, context=context)


def _live_about(order_pk, trade_no, sku, keep, only):
    about = RiskCase.objects.live().about(Order(pk=order_pk, trade_no=trade_no, sku=sku)).exclude(rule__in=keep)
    if only is not None:
        about = about.filter(rule__in=only)
    return about.values("pk", "rule", "subject", "fingerprint")


# Asked after every step: written by the ORM once per process.
_LIVE_ABOUT = Kept(_live_about, ((-7101, "kept-trade-a", "kept-sku-a"), (-7102, "kept-trade-b", "kept-sku-b")))


def _clear(live, group=None, context=_context):
    """Close the cases of ``live`` (an order → its live case rows) whose rule
    no longer holds for that order, each rule asked once about all the
    orders it has a case on (one order from a step, many from a carrier's
    batch); a group rule reads the split group ``group`` names. ``context``
    gives the rules' context (``_context``, or one shared by a set of steps)."""
    ctx = context()
    now = ctx.now
    if group is not None:
        # A copy that reads this group only; what it works out is shared.
        ctx = rules.only_group(dataclasses.replace(ctx), *group)
    by_rule = {}
    for order, rows in live.items():
        for row in rows:
            by_rule.setdefault(row["rule"], []).append((order, row))
    cleared = {FINISHED: [], CLEARED_BY_STEP: []}
    for rule, pairs in by_rule.items():
        asked = Order.objects.filter(pk__in=sorted({order.pk for order, _row in pairs}))
        holding = rules.RULES[rule].subjects_hit(ctx, asked)
        for order, row in pairs:
            if row["subject"] not in holding:
                cleared[FINISHED if order.state in TERMINAL_STATES else CLEARED_BY_STEP].append(row)
    for why, rows in cleared.items():
        if rows:
            sweep.resolve_rows(rows, Resolution.CONDITION_CLEARED, now, why=why)


def _verified(order, actor, params):
    """The provider recorded why a parcel is unsigned: that answers the case;
    "cannot determine" and "system refuses" go to the platform at once."""
    outcome = params["outcome"]
    note = params.get("note", "")
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


def choose_split(trade_no, sku, choice, actor):
    """The merchant's answer for a split group (``orders.splits.choose``) and,
    in the same transaction, what it does to the group's cases: the live
    ``split_order`` case records the choice, and a group case whose condition
    the answer removed (the group already matches it; choice B for extra
    logistics fees) resolves now, not at the next sweep."""
    with transaction.atomic():
        group = splits.choose(trade_no, sku, choice, actor)
        case = RiskCase.objects.live().filter(rule=Rule.SPLIT_ORDER, subject=f"group:{trade_no}/{sku}").first()
        if case is not None:
            cases.record(
                case,
                CaseEventKind.SPLIT_CHOICE,
                user=actor.user,
                organisation=actor.organisation,
                note=str(SplitChoice(choice).label),
            )
        # Any open order of the group stands for it (``choose`` refuses a
        # group with none).
        member = Order.objects.split_group(trade_no, sku).open().order_by("pk").first()
        _resolve_cleared(member, only=GROUP_RULES)
    return group
