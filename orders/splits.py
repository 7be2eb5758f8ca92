"""The merchant's answer for a split group (SPEC §3, split_order).

Orders that share a trade and a SKU are a split group (``SplitGroup``). Its
merchant chooses how they are handled: **A**, refund the extra orders and
re-buy them as normal orders; **B**, keep them as "no appraisal needed",
every printed waybill picked up and delivered, the merchant bearing the
logistics fees. ``choose`` records the answer on the group and one
``OrderEvent`` on every order of the group, so each order's log says who
chose what and when. What the answer does to risk cases is the risks
engine's (``risks.reactions.choose_split`` wraps this in its transaction).
"""

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders import errors
from orders.choices import TERMINAL_STATES, Action, SplitChoice
from orders.events import build_event
from orders.models import Order, OrderEvent, SplitGroup


def chooses_for_group(org, trade_no, sku) -> bool:
    """Whether ``org`` may answer the split group: the one merchant of every
    order in it. A group created across two merchants (before a trade was
    tied to one merchant) has no one to choose for it: neither merchant may
    decide for the other's orders."""
    if org is None or not org.is_merchant:
        return False
    members = Order.objects.split_group(trade_no, sku).order_by()
    return set(members.values_list("merchant_id", flat=True).distinct()) == {org.pk}


def choose(trade_no, sku, choice, actor) -> SplitGroup:
    """Record the merchant's ``choice`` (``SplitChoice``) for the split group
    ``(trade_no, sku)`` and return the group.

    Raises ``errors.InvalidInput`` for a choice that is neither A nor B,
    ``errors.NotAllowed`` for anyone but a merchant, ``Order.DoesNotExist``
    when the merchant has no order in the group, ``errors.TradeOfOtherMerchant``
    when another merchant has orders in it too, and ``errors.InvalidTransition``
    when the orders are not a split group or are all finished. In one
    transaction it locks the group and its orders (in id order), saves the
    choice and writes one ``SPLIT_CHOICE`` event on every order of the group,
    each order's version bumped as for any other change.
    """
    if choice not in SplitChoice.values:
        raise errors.InvalidInput(_("Choose A or B."), field="choice")
    org = actor.organisation
    if org is None or not org.is_merchant:
        raise errors.NotAllowed(_("The merchant chooses how split orders are handled."))
    members = Order.objects.split_group(trade_no, sku)
    if not members.filter(merchant=org).exists():
        raise Order.DoesNotExist
    if not chooses_for_group(org, trade_no, sku):
        raise errors.TradeOfOtherMerchant(trade_no=trade_no)
    with transaction.atomic():
        group = SplitGroup.objects.select_for_update().filter(trade_no=trade_no, sku=sku).first()
        locked = list(members.select_for_update().order_by("pk"))
        if group is None or len(locked) < 2:
            raise errors.InvalidTransition(_("These orders are not a split group."))
        if all(order.state in TERMINAL_STATES for order in locked):
            raise errors.InvalidTransition(_("Every order of this group is finished; there is nothing left to choose."))
        now = timezone.now()
        group.choice = choice
        group.chosen_by = actor.user
        group.chosen_at = now
        group.save(update_fields=["choice", "chosen_by", "chosen_at"])
        _record(locked, choice, actor, now)
    return group


def _record(orders, choice, actor, at):
    """One event per order, its ``seq`` the order's next version; the choice
    lives on the group, so the events change no field of the order."""
    Order.objects.filter(pk__in=[order.pk for order in orders]).update(version=F("version") + 1)
    events = []
    for order in orders:
        order.version += 1
        events.append(
            build_event(
                order,
                action=Action.SPLIT_CHOICE,
                actor=actor,
                from_state=order.state,
                changes={},
                params={"choice": choice},
                occurred_at=at,
            )
        )
    OrderEvent.objects.bulk_create(events)
