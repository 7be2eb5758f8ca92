"""Typed refusals from the workflow. Each is a ``portal.errors.WorkflowError``:
a stable ``code`` (the API answers with it), its HTTP status, and a message a
person can act on, in the active language."""

from django.utils.translation import gettext_lazy as _

from portal.errors import WorkflowError


class InvalidInput(WorkflowError):
    code = "invalid"
    http_status = 400
    template = _("The input is not valid.")

    def __init__(self, template=None, field=None, fields=None, **params):
        super().__init__(template, **params)
        self.field = field
        # Field name -> list of messages, as forms and serializers show them.
        self.fields = fields or ({field: [self.message]} if field else {})


class NotAllowed(WorkflowError):
    code = "not_allowed"
    http_status = 403
    template = _("Your organisation may not %(action)s this order.")


class InvalidTransition(WorkflowError):
    code = "invalid_transition"
    template = _("“%(action)s” is not possible while the order is “%(state)s”.")


class OrderIsTerminal(InvalidTransition):
    code = "order_terminal"
    template = _("The order is already “%(state)s”, a final state; nothing can change it any more.")


class Conflict(WorkflowError):
    code = "conflict"
    template = _("This order changed while you were looking at it. Reload it and try again.")


class SplitGroupAlreadyAppraised(WorkflowError):
    code = "split_group_already_appraised"
    template = _(
        "Order %(other)s of the same trade and SKU already carries an appraisal result, and the merchant "
        "pays one appraisal fee per item. Choose “No appraisal needed” for this order and see the "
        "split-order case."
    )


class FlowBlocked(WorkflowError):
    code = "flow_blocked"
    template = _(
        "The online flow of this order is reported blocked (%(stage)s). A platform operator must unblock it "
        "before a waybill can be printed. Never ship it offline."
    )


class AlreadyBlocked(WorkflowError):
    code = "already_blocked"
    template = _("The flow of this order is already reported blocked; the platform is handling it.")


class NotBlocked(WorkflowError):
    code = "not_blocked"
    template = _("The flow of this order is not blocked.")


class NotOnlineWaybill(WorkflowError):
    code = "not_online_waybill"
    template = _(
        "Tracking number %(tracking_no)s is not this order's online waybill; only a pickup of the online "
        "waybill ships an order."
    )


class TradeOfOtherMerchant(WorkflowError):
    """A trade is one buyer's purchase from one merchant: its orders, and so its
    split groups, never span two merchants."""

    code = "trade_other_merchant"
    template = _(
        "Trade %(trade_no)s already has orders of another merchant. A trade belongs to one merchant; "
        "check the trade number."
    )
