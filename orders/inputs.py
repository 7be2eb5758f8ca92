"""Checking what people and integrations send to the workflow.

Each action takes a fixed set of parameters; ``clean_params`` checks them,
strips text, and refuses unknown fields, control characters, over-long text
and malformed tracking numbers with ``errors.InvalidInput`` naming the field.
"""

import datetime
import re

from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders import errors
from orders.choices import Action, AppraisalResult, BlockedStage, ScanStatus, VerifyOutcome

A = Action
MAX_EXTENSION_HOURS = 720
MAX_TEXT = 2000

# Messages for refused input, kept together so the catalogue reads in one place.
msg_text_expected = _("%(name)s must be text.")
msg_control_chars = _("%(name)s contains control characters.")
msg_required = _("%(name)s is required.")
msg_too_long = _("%(name)s is longer than %(max)s characters.")
msg_tracking = _("A tracking number is 4 to 64 letters, digits or dashes.")
msg_choice = _("%(name)s must be one of: %(choices)s.")
msg_hours = _("Hours must be a whole number from 1 to %(max)s.")
msg_unknown = _("Unknown field(s): %(names)s.")
msg_unknown_action = _("Unknown action “%(action)s”.")
msg_aware = _("The time must carry a time zone offset.")

msg_identifier = _("Use 1 to 64 letters, digits, dots, dashes or underscores, not starting with a dot.")

_TRACKING_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9-]{3,63}$")
# Order, trade and SKU numbers are path segments of addresses (/orders/<order_no>/,
# /split-groups/<trade_no>/<sku>/): a slash, "..", a space or a control
# character would make the record impossible to address.
IDENTIFIER_PATTERN = r"^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$"
_IDENTIFIER_RE = re.compile(IDENTIFIER_PATTERN)
# On the model fields too, so every way in (the API, an import, the demo)
# makes orders that can be addressed by URL.
identifier_validator = RegexValidator(IDENTIFIER_PATTERN, msg_identifier)
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_text(params, name, *, required, max_length=MAX_TEXT, label=None):
    """``params[name]`` as stripped text without control characters, within ``max_length``."""
    value = params.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise errors.InvalidInput(msg_text_expected, field=name, name=label or name)
    value = value.strip()
    if _CONTROL_RE.search(value):
        raise errors.InvalidInput(msg_control_chars, field=name, name=label or name)
    if required and not value:
        raise errors.InvalidInput(msg_required, field=name, name=label or name)
    if len(value) > max_length:
        raise errors.InvalidInput(msg_too_long, field=name, name=label or name, max=max_length)
    return value


def is_identifier(value) -> bool:
    """Whether ``value`` may be an order, trade or SKU number (``IDENTIFIER_PATTERN``)."""
    return isinstance(value, str) and bool(_IDENTIFIER_RE.fullmatch(value))


def _clean_tracking(params, name="tracking_no"):
    value = clean_text(params, name, required=True, max_length=64)
    if not _TRACKING_RE.match(value):
        raise errors.InvalidInput(msg_tracking, field=name)
    return value


def _clean_choice(params, name, choices):
    value = params.get(name)
    if value not in choices.values:
        raise errors.InvalidInput(msg_choice, field=name, name=name, choices=", ".join(str(v) for v in choices.values))
    return value


def _clean_hours(params):
    value = params.get("hours")
    if isinstance(value, bool) or not isinstance(value, int):
        # ASCII digits only, and few of them: int() refuses "²" and 5,000 digits.
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,6}", value.strip()):
            value = int(value.strip())
        else:
            raise errors.InvalidInput(msg_hours, field="hours", max=MAX_EXTENSION_HOURS)
    if not 1 <= value <= MAX_EXTENSION_HOURS:
        raise errors.InvalidInput(msg_hours, field="hours", max=MAX_EXTENSION_HOURS)
    return value


def clean_params(action, params) -> dict:
    """The parameters ``action`` takes, checked and stripped; unknown ones are
    refused with ``errors.InvalidInput`` naming the field."""
    allowed = _PARAMS.get(action, ("note",))
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        raise errors.InvalidInput(msg_unknown, field=unknown[0], names=", ".join(unknown))
    cleaned = {}
    if action == A.SHIP:
        cleaned["carrier"] = clean_text(params, "carrier", required=True, max_length=64)
        cleaned["tracking_no"] = _clean_tracking(params)
    elif action in (A.CARRIER_PICKUP, A.CARRIER_DELIVERY, A.OFFLINE_SHIPMENT):
        cleaned["carrier"] = clean_text(params, "carrier", required=True, max_length=64)
        cleaned["tracking_no"] = _clean_tracking(params)
        if action == A.OFFLINE_SHIPMENT:
            cleaned["status"] = _clean_choice(params, "status", ScanStatus)
    elif action == A.APPRAISE:
        cleaned["result"] = _clean_choice(params, "result", AppraisalResult)
    elif action == A.REPORT_BLOCKED:
        cleaned["stage"] = _clean_choice(params, "stage", BlockedStage)
        cleaned["reason"] = clean_text(params, "reason", required=True)
    elif action == A.EXTEND_DEADLINE:
        cleaned["hours"] = _clean_hours(params)
    elif action == A.REFUND:
        cleaned["reason"] = clean_text(params, "reason", required=True)
    elif action == A.VERIFY_PENDING:
        cleaned["outcome"] = _clean_choice(params, "outcome", VerifyOutcome)
    elif action == A.SIGN_IN_ON_BEHALF:
        cleaned["note"] = clean_text(params, "note", required=True)
    if "note" in allowed and "note" not in cleaned:
        note = clean_text(params, "note", required=False)
        if note:
            cleaned["note"] = note
    return cleaned


_PARAMS = {
    A.SHIP: ("carrier", "tracking_no", "note"),
    A.CARRIER_PICKUP: ("carrier", "tracking_no"),
    A.CARRIER_DELIVERY: ("carrier", "tracking_no"),
    A.OFFLINE_SHIPMENT: ("carrier", "tracking_no", "status"),
    A.APPRAISE: ("result", "note"),
    A.REPORT_BLOCKED: ("stage", "reason"),
    A.EXTEND_DEADLINE: ("hours", "note"),
    A.REFUND: ("reason",),
    A.SIGN_IN_ON_BEHALF: ("note",),
    A.VERIFY_PENDING: ("outcome", "note"),
    A.EXPIRE: (),
}


# Times outside these years are typing mistakes, and some (far offsets, year
# 9999) cannot be stored at all: they are refused as input.
EARLIEST = datetime.datetime(2000, 1, 1, tzinfo=datetime.UTC)
LATEST = datetime.datetime(2100, 1, 1, tzinfo=datetime.UTC)
msg_time_range = _("The time must be between 2000 and 2100, with an offset of at most 14 hours.")


def sane_time(value: datetime.datetime) -> datetime.datetime:
    """``value`` in UTC if it is an aware time within 2000–2100 and a real-world
    offset; raises ``ValueError`` otherwise."""
    if timezone.is_naive(value):
        raise ValueError("naive")
    offset = value.utcoffset()
    if offset is None or abs(offset) > datetime.timedelta(hours=14):
        raise ValueError("offset")
    if not EARLIEST.replace(tzinfo=None) < value.replace(tzinfo=None) < LATEST.replace(tzinfo=None):
        raise ValueError("range")
    return value.astimezone(datetime.UTC)


def clean_time(occurred_at) -> datetime.datetime:
    """``occurred_at`` if it is an aware datetime, now if it is ``None``."""
    if occurred_at is None:
        return timezone.now()
    if not isinstance(occurred_at, datetime.datetime) or timezone.is_naive(occurred_at):
        raise errors.InvalidInput(msg_aware, field="occurred_at")
    try:
        return sane_time(occurred_at)
    except ValueError:
        raise errors.InvalidInput(msg_time_range, field="occurred_at") from None


# A carrier's clock may run a little ahead of ours; a scan dated further ahead
# is a mistake (or a forgery) that would sort after every real one.
MAX_SCAN_AHEAD = datetime.timedelta(days=1)
msg_scan_ahead = _("A scan cannot be dated more than a day in the future.")


def clean_scan_time(occurred_at) -> datetime.datetime:
    """A carrier scan's time: ``clean_time``, and no more than ``MAX_SCAN_AHEAD`` past now."""
    occurred_at = clean_time(occurred_at)
    if occurred_at > timezone.now() + MAX_SCAN_AHEAD:
        raise errors.InvalidInput(msg_scan_ahead, field="occurred_at")
    return occurred_at
