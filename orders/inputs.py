"""Checking what people and integrations send to the workflow.

Each action takes a fixed set of parameters, declared once in ``ACTION_PARAMS``;
the order page's forms (``orders.forms``) and the API's bodies
(``orders.api.serializers``) are made from the same declarations, and what
a parameter is called and which choices it has are in
``orders.choices.EVENT_PARAMETERS``. ``clean_params`` checks the parameters,
strips text, and refuses unknown fields, control characters, over-long text
and malformed tracking numbers with ``errors.InvalidInput`` naming the field.
"""

import datetime
import re
from dataclasses import dataclass, replace

from django.core.validators import RegexValidator
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from orders import errors
from orders.choices import EVENT_PARAMETERS, Action

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


# The kinds of parameter: how each is checked, and asked for on a page and in the API.
TEXT = "text"  # what a person writes, a line or a few
LINE = "line"  # one short line, as a carrier's name
TRACKING = "tracking"  # a parcel's tracking number
CHOICE = "choice"  # one code of the parameter's choices
HOURS = "hours"  # whole hours, 1 to MAX_EXTENSION_HOURS


@dataclass(frozen=True)
class Param:
    """One parameter of an action. What it is called (``label``) and the
    choices of a ``CHOICE`` are the parameter's own, in ``EVENT_PARAMETERS``."""

    name: str
    kind: str
    required: bool = True
    max_length: int | None = None

    def __post_init__(self):
        if (self.kind == CHOICE) != (self.choices is not None):
            raise ValueError(f"{self.name}: EVENT_PARAMETERS gives choices to a CHOICE parameter, and only to one")

    @property
    def label(self):
        return EVENT_PARAMETERS[self.name][0]

    @property
    def choices(self):
        return EVENT_PARAMETERS[self.name][1]


CARRIER = Param("carrier", LINE, max_length=64)
TRACKING_NO = Param("tracking_no", TRACKING, max_length=64)
STATUS = Param("status", CHOICE)
RESULT = Param("result", CHOICE)
STAGE = Param("stage", CHOICE)
OUTCOME = Param("outcome", CHOICE)
REASON = Param("reason", TEXT, max_length=MAX_TEXT)
EXTENSION = Param("hours", HOURS)
NOTE = Param("note", TEXT, required=False, max_length=MAX_TEXT)

# What an action without its own list takes: an optional note.
NOTE_ONLY = (NOTE,)

# The parameters of each action, in the order they are checked.
ACTION_PARAMS = {
    A.SHIP: (CARRIER, TRACKING_NO, NOTE),
    A.CARRIER_PICKUP: (CARRIER, TRACKING_NO),
    A.CARRIER_DELIVERY: (CARRIER, TRACKING_NO),
    A.OFFLINE_SHIPMENT: (CARRIER, TRACKING_NO, STATUS),
    A.APPRAISE: (RESULT, NOTE),
    A.REPORT_BLOCKED: (STAGE, REASON),
    A.EXTEND_DEADLINE: (EXTENSION, NOTE),
    A.REFUND: (REASON,),
    # The platform says why it signs in for the provider.
    A.SIGN_IN_ON_BEHALF: (replace(NOTE, required=True),),
    A.VERIFY_PENDING: (OUTCOME, NOTE),
    A.EXPIRE: (),
}


def params_of(action) -> tuple[Param, ...]:
    """The parameters ``action`` takes (``NOTE_ONLY`` unless it has its own list)."""
    return ACTION_PARAMS.get(action, NOTE_ONLY)


def _clean_tracking(params, param):
    value = clean_text(params, param.name, required=param.required, max_length=param.max_length)
    if not _TRACKING_RE.match(value):
        raise errors.InvalidInput(msg_tracking, field=param.name)
    return value


def _clean_choice(params, param):
    value = params.get(param.name)
    if value not in param.choices.values:
        choices = ", ".join(str(v) for v in param.choices.values)
        raise errors.InvalidInput(msg_choice, field=param.name, name=param.name, choices=choices)
    return value


def _clean_hours(params, param):
    value = params.get(param.name)
    if isinstance(value, bool) or not isinstance(value, int):
        # ASCII digits only, and few of them: int() refuses "²" and 5,000 digits.
        if isinstance(value, str) and re.fullmatch(r"[0-9]{1,6}", value.strip()):
            value = int(value.strip())
        else:
            raise errors.InvalidInput(msg_hours, field=param.name, max=MAX_EXTENSION_HOURS)
    if not 1 <= value <= MAX_EXTENSION_HOURS:
        raise errors.InvalidInput(msg_hours, field=param.name, max=MAX_EXTENSION_HOURS)
    return value


def _clean_text(params, param):
    return clean_text(params, param.name, required=param.required, max_length=param.max_length)


_CLEAN = {TEXT: _clean_text, LINE: _clean_text, TRACKING: _clean_tracking, CHOICE: _clean_choice, HOURS: _clean_hours}


def clean_params(action, params) -> dict:
    """The parameters ``action`` takes, checked and stripped; unknown ones are
    refused with ``errors.InvalidInput`` naming the field. Optional text left
    blank is left out."""
    taken = params_of(action)
    unknown = sorted(set(params) - {param.name for param in taken})
    if unknown:
        raise errors.InvalidInput(msg_unknown, field=unknown[0], names=", ".join(unknown))
    cleaned = {}
    for param in taken:
        value = _CLEAN[param.kind](params, param)
        if param.required or value:
            cleaned[param.name] = value
    return cleaned


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
