from django.db import models
from django.utils.translation import gettext_lazy as _

# The channel of a step is the ground's (``portal.choices``), as is who takes
# it (``portal.actors``); it is named here too, with the orders' choices.


class OrderState(models.TextChoices):
    AWAITING_SHIPMENT = "awaiting_shipment", _("Awaiting shipment to provider")
    INBOUND = "inbound", _("In transit to provider")
    ARRIVED = "arrived", _("Pending sign-in")
    SIGNED_IN = "signed_in", _("Signed in by the provider")
    APPRAISED = "appraised", _("Appraised")
    INSPECTED = "inspected", _("Inspected")
    PACKED = "packed", _("Packed")
    WAYBILL_PRINTED = "waybill_printed", _("Waybill printed, awaiting pickup")
    OUTBOUND = "outbound", _("Picked up, in transit")
    DELIVERED = "delivered", _("Delivered to the buyer")
    COMPLETED = "completed", _("Completed")
    RETURNED = "returned", _("Returned to merchant")
    REFUNDED = "refunded", _("Refunded")
    AUTO_REFUNDED = "auto_refunded", _("Auto-refunded (loss)")


TERMINAL_STATES = frozenset({OrderState.COMPLETED, OrderState.RETURNED, OrderState.REFUNDED, OrderState.AUTO_REFUNDED})
OPEN_STATES = frozenset(s for s in OrderState if s not in TERMINAL_STATES)
# How near the automatic-confirmation deadline of an order not yet delivered
# may come: under DEADLINE_AT_RISK_HOURS it is at risk (SPEC §3
# deadline_at_risk; red on the lists and on the operator's home), under
# DEADLINE_NEAR_HOURS it is near (a pending sign-in turns high; amber). The
# screens state these numbers in their text, and RiskSettings starts from them.
DEADLINE_AT_RISK_HOURS = 48
DEADLINE_NEAR_HOURS = 72
# The order in which an order normally passes through the states; used to
# tell a carrier scan that came early from one that came late.
FLOW_ORDER = [
    OrderState.AWAITING_SHIPMENT,
    OrderState.INBOUND,
    OrderState.ARRIVED,
    OrderState.SIGNED_IN,
    OrderState.APPRAISED,
    OrderState.INSPECTED,
    OrderState.PACKED,
    OrderState.WAYBILL_PRINTED,
    OrderState.OUTBOUND,
    OrderState.DELIVERED,
]


class AppraisalResult(models.TextChoices):
    PASS = "pass", _("Pass")
    FAIL = "fail", _("Fail")
    NOT_REQUIRED = "not_required", _("No appraisal needed")


# The results that generate an appraisal fee; a split group may carry one.
FEE_RESULTS = frozenset({AppraisalResult.PASS, AppraisalResult.FAIL})


class BlockedStage(models.TextChoices):
    ENTRY = "entry", _("Cannot enter the order")
    INSPECTION = "inspection", _("Cannot inspect")
    PACKING = "packing", _("Cannot pack")


class Action(models.TextChoices):
    """Everything that can happen to an order; each writes one event."""

    CREATE = "create", _("Order created")
    SHIP = "ship", _("Record shipment to provider")
    CARRIER_PICKUP = "carrier_pickup", _("Carrier picked up")
    CARRIER_DELIVERY = "carrier_delivery", _("Carrier delivered")
    OFFLINE_SHIPMENT = "offline_shipment", _("Carrier scan outside the online flow")
    SIGN_IN = "sign_in", _("Sign in")
    SIGN_IN_ON_BEHALF = "sign_in_on_behalf", _("Sign in on the provider's behalf")
    VERIFY_PENDING = "verify_pending", _("Verify pending sign-in")
    APPRAISE = "appraise", _("Record appraisal result")
    INSPECT = "inspect", _("Quality inspection")
    PACK = "pack", _("Pack")
    PRINT_WAYBILL = "print_waybill", _("Print online waybill")
    REPORT_BLOCKED = "report_blocked", _("Report blocked flow")
    UNBLOCK = "unblock", _("Unblock")
    EXTEND_DEADLINE = "extend_deadline", _("Extend confirmation time")
    REFUND = "refund", _("Refund")
    CONFIRM = "confirm", _("Confirm receipt")
    EXPIRE = "expire", _("Automatic confirmation deadline passed")
    # Recorded on every order of a split group when the merchant answers for
    # it (``orders.splits``); not a transition.
    SPLIT_CHOICE = "split_choice", _("Merchant's split-order choice")


class VerifyOutcome(models.TextChoices):
    """Why a parcel waiting to be signed for has not been (SPEC §3, pending_sign_in)."""

    SIGNED = "signed", _("Signed in now")
    REFUNDED_BEFORE_SHIPMENT = "refunded_before_shipment", _("Customer refunded before the merchant shipped")
    STILL_IN_TRANSIT = "still_in_transit", _("Still in transit")
    CANNOT_DETERMINE = "cannot_determine", _("Cannot determine")
    SYSTEM_CANNOT_SIGN = "system_cannot_sign", _("System refuses sign-in")


# Outcomes the provider cannot settle alone: they go to the platform at once.
ESCALATING_OUTCOMES = frozenset({VerifyOutcome.CANNOT_DETERMINE, VerifyOutcome.SYSTEM_CANNOT_SIGN})


class ScanStatus(models.TextChoices):
    PICKED_UP = "picked_up", _("Picked up")
    DELIVERED = "delivered", _("Delivered")


class ScanOutcome(models.TextChoices):
    APPLIED = "applied", _("Applied to the order")
    PENDING = "pending", _("Waiting for its order")
    OFFLINE = "offline", _("Offline shipment")
    IGNORED = "ignored", _("Ignored (order already past it)")


class FeeKind(models.TextChoices):
    APPRAISAL = "appraisal", _("Appraisal fee")
    LOGISTICS = "logistics", _("Logistics fee")


class SplitChoice(models.TextChoices):
    REFUND_AND_REBUY = "A", _("Refund and re-buy as normal orders")
    KEEP_NOT_REQUIRED = "B", _("Keep, no appraisal, every waybill picked up and delivered")


# What each workflow parameter is called on screen, and the choices its stored
# value is a code of (``None``: the value is shown as it was given, e.g. a note
# a person typed). One entry per parameter ``orders.inputs`` accepts; the order
# timeline and the escalation thread read it so no stored code reaches a reader.
EVENT_PARAMETERS = {
    "carrier": (_("Carrier"), None),
    "tracking_no": (_("Tracking number"), None),
    "status": (_("Carrier status"), ScanStatus),
    "result": (_("Result"), AppraisalResult),
    "stage": (_("Where the flow is blocked"), BlockedStage),
    "outcome": (_("Outcome"), VerifyOutcome),
    "reason": (_("Reason"), None),
    "hours": (_("Hours"), None),
    "note": (_("Note"), None),
    # The merchant's answer for a split group (``orders.splits``).
    "choice": (_("The merchant chose"), SplitChoice),
}


def _declared_at(declared, name) -> tuple:
    return (declared.index(name), "") if name in declared else (len(declared), name)


def describe_parameters(params: dict) -> list[tuple[str, str]]:
    """``(label, value)`` pairs for an event's stored parameters, in the active
    language: codes become their labels, free text stays as given. A name
    without a home is shown as it is rather than hidden. The order is the
    declared one: a database may store a JSON object's keys in any order."""
    declared = list(EVENT_PARAMETERS)
    described = []
    for name, value in sorted(params.items(), key=lambda item: _declared_at(declared, item[0])):
        label, choices = EVENT_PARAMETERS.get(name, (name, None))
        if choices is not None and value in choices.values:
            value = choices(value).label
        described.append((str(label), str(value)))
    return described


class ImportStatus(models.TextChoices):
    QUEUED = "queued", _("Waiting to start")
    RUNNING = "running", _("Importing")
    DONE = "done", _("Finished")
    FAILED = "failed", _("Failed")
