import copy
import re
from decimal import Decimal

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

from orders import inputs
from orders.choices import Action, ScanStatus
from orders.inputs import (
    MAX_EXTENSION_HOURS,
    MAX_TEXT,
    identifier_validator,
    is_identifier,
    msg_identifier,
    msg_time_range,
    sane_time,
)
from orders.models import Order, OrderEvent, mask_buyer
from portal.api import StrictSerializer
from portal.choices import OrganisationKind
from portal.models import Organisation

MAX_AMOUNT = Decimal("9999999999.99")
_HAS_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$", re.I)


class TimeField(serializers.DateTimeField):
    """An ISO 8601 time with an offset, within 2000–2100, stored in UTC."""

    default_error_messages = {"range": msg_time_range, "naive": _("The time must carry a time zone offset.")}

    def to_internal_value(self, value):
        if isinstance(value, str) and not _HAS_OFFSET.search(value.strip()):
            self.fail("naive")
        parsed = super().to_internal_value(value)
        try:
            return sane_time(parsed)
        except ValueError:
            self.fail("range")


def text(max_length=MAX_TEXT, required=True, **kwargs):
    return serializers.CharField(max_length=max_length, required=required, allow_blank=not required, **kwargs)


class IdentifierField(serializers.CharField):
    """An order, trade or SKU number: a usable path segment (``orders.inputs.identifier_validator``)."""

    default_error_messages = {"identifier": msg_identifier}

    def __init__(self, **kwargs):
        # The validator puts the pattern in the schema; the check below is the one that decides.
        super().__init__(max_length=64, validators=[identifier_validator], **kwargs)

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not is_identifier(value):
            self.fail("identifier")
        return value


class OrganisationCodeField(serializers.SlugRelatedField):
    """An organisation given by its code, limited to one kind."""

    def __init__(self, kind, **kwargs):
        super().__init__(slug_field="code", queryset=Organisation.objects.filter(kind=kind, is_active=True), **kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str) or "\x00" in data:
            self.fail("invalid")
        return super().to_internal_value(data)


class EventSerializer(serializers.ModelSerializer):
    actor = serializers.SerializerMethodField()

    class Meta:
        model = OrderEvent
        fields = ["seq", "action", "source", "actor", "from_state", "to_state", "payload", "occurred_at", "recorded_at"]

    def to_representation(self, event):
        data = super().to_representation(event)
        request = self.context.get("request")
        org = getattr(request.user, "organisation", None) if request else None
        payload = data.get("payload")
        if isinstance(payload, dict):
            data["payload"] = {
                key: mask_buyer(value, org) if isinstance(value, dict) else value for key, value in payload.items()
            }
        return data

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_actor(self, event) -> str | None:
        if event.actor_user_id:
            return event.actor_user.username
        if event.actor_organisation_id:
            return event.actor_organisation.code
        return None


def _unbound(field):
    """A copy of ``field`` that holds on to no serializer (nor its request)."""
    copied = copy.copy(field)
    copied.parent = None
    return copied


def _plain_time(field, name) -> bool:
    """Whether ``field`` is DRF's own time field rendering its own attribute
    with no format or zone of its own (so the settings' format, in the
    current time zone)."""
    return (
        type(field) is serializers.DateTimeField
        and field.source == name
        and "format" not in vars(field)
        and not hasattr(field, "timezone")
    )


def _iso_time(value, zone, field):
    """``value`` as ``field`` renders it, the current zone read once per
    order rather than once per time (most of a page's rendering)."""
    if value is None:
        return None
    if zone is None or value.tzinfo is None or api_settings.DATETIME_FORMAT != ISO_8601:
        return field.to_representation(value)
    try:
        text = value.astimezone(zone).isoformat()
    except OverflowError:
        return field.to_representation(value)
    return text[:-6] + "Z" if text.endswith("+00:00") else text


# Fields whose rendering of a value read from the database is the value itself.
_AS_STORED = (serializers.CharField, serializers.ChoiceField, serializers.IntegerField, serializers.BooleanField)


class OrderSerializer(serializers.ModelSerializer):
    """An order as integrations see it: every field of SPEC §2, organisations by code."""

    merchant = serializers.SlugRelatedField(slug_field="code", read_only=True)
    provider = serializers.SlugRelatedField(slug_field="code", read_only=True)
    in_split_group = serializers.SerializerMethodField()
    buyer_name = serializers.SerializerMethodField()
    buyer_phone = serializers.SerializerMethodField()
    buyer_address = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "order_no",
            "trade_no",
            "merchant",
            "provider",
            "sku",
            "item_title",
            "quantity",
            "amount",
            "buyer_name",
            "buyer_phone",
            "buyer_address",
            "paid_at",
            "auto_confirm_at",
            "state",
            "appraisal_result",
            "flow_blocked",
            "blocked_stage",
            "blocked_reason",
            "inbound_carrier",
            "inbound_tracking_no",
            "inbound_delivered_at",
            "waybill_no",
            "waybill_printed_at",
            "picked_up_at",
            "delivered_at",
            "confirmed_at",
            "state_changed_at",
            "version",
            "in_split_group",
        ]

    def _buyer(self, order):
        request = self.context.get("request")
        org = getattr(request.user, "organisation", None) if request else None
        return order.buyer_for(org)

    def get_buyer_name(self, order) -> str:
        return self._buyer(order)["name"]

    def get_buyer_phone(self, order) -> str:
        return self._buyer(order)["phone"]

    def get_buyer_address(self, order) -> str:
        return self._buyer(order)["address"]

    def get_in_split_group(self, order) -> bool:
        if hasattr(order, "in_split_group"):
            return bool(order.in_split_group)
        return order.split_group_orders().exclude(pk=order.pk).exists()

    def to_representation(self, order):
        """The order as the declared fields render it, in one pass: a page of
        orders otherwise spends most of its time in the per-field calls of the
        generic path (each field's attribute lookup, the buyer masked three
        times). Times and amounts still go through their fields, so their
        format is the fields' own; a test holds both paths equal."""
        plan = self._lean_plan()
        buyer = self._buyer(order)
        zone = timezone.get_current_timezone() if settings.USE_TZ else None
        out = {}
        for name, how, field in plan:
            if how == "time":
                out[name] = _iso_time(getattr(order, name), zone, field)
            elif how == "buyer":
                out[name] = buyer[name.removeprefix("buyer_")]
            elif how == "code":
                # A code read with the order (``workflow.lock_in_scope``) or its organisation's.
                code = getattr(order, f"{name}_code", None)
                out[name] = code if code is not None else getattr(order, name).code
            elif how == "method":
                out[name] = self.get_in_split_group(order)
            else:
                value = getattr(order, name) if how != "generic" else field.get_attribute(order)
                out[name] = None if value is None else (value if how == "value" else field.to_representation(value))
        return out

    def _lean_plan(self):
        # Building a ModelSerializer's fields costs more than rendering a
        # page of orders with them. A plan of fields that render a value
        # alone (nothing of the request or of a nested serializer) is kept
        # for the class and shared by every answer; one with a nested field
        # is made for each serializer.
        plan = getattr(self, "_plan", None) or type(self).__dict__.get("_shared_plan")
        if plan is None:
            plan = []
            for name, field in self.fields.items():
                if field.write_only:
                    continue
                if name.startswith("buyer_"):
                    how = "buyer"
                elif isinstance(field, serializers.SlugRelatedField):
                    how = "code"
                elif isinstance(field, serializers.SerializerMethodField):
                    how = "method"
                elif isinstance(field, _AS_STORED) and field.source == name:
                    # A string, number or flag is rendered as the database gives it.
                    how = "value"
                elif _plain_time(field, name):
                    how = "time"
                elif isinstance(field, serializers.DateTimeField | serializers.DecimalField) and field.source == name:
                    how = "field"
                else:
                    how = "generic"
                plan.append((name, how, field))
            if all(how != "generic" for _name, how, _field in plan):
                type(self)._shared_plan = [(name, how, _unbound(field)) for name, how, field in plan]
        self._plan = plan
        return plan


class OrderDetailSerializer(OrderSerializer):
    events = EventSerializer(many=True, read_only=True)

    class Meta(OrderSerializer.Meta):
        fields = [*OrderSerializer.Meta.fields, "events"]


class OrderCreateSerializer(StrictSerializer):
    order_no = IdentifierField()
    trade_no = IdentifierField()
    merchant = OrganisationCodeField(OrganisationKind.MERCHANT)
    provider = OrganisationCodeField(OrganisationKind.PROVIDER)
    sku = IdentifierField()
    item_title = text(300)
    quantity = serializers.IntegerField(min_value=1, max_value=100000)
    amount = serializers.DecimalField(max_digits=12, decimal_places=2, min_value=Decimal("0"), max_value=MAX_AMOUNT)
    paid_at = TimeField()
    auto_confirm_at = TimeField()
    buyer_name = text(100, required=False)
    buyer_phone = text(32, required=False)
    buyer_address = text(300, required=False)

    def validate(self, attrs):
        if attrs["auto_confirm_at"] <= attrs["paid_at"]:
            raise serializers.ValidationError({"auto_confirm_at": [_("The deadline must be after the payment.")]})
        return attrs


def _body_field(param):
    """The body field taking ``param`` (``orders.inputs``)."""
    optional = {} if param.required else {"required": False}
    if param.kind == inputs.CHOICE:
        return serializers.ChoiceField(choices=param.choices.choices, **optional)
    if param.kind == inputs.HOURS:
        return serializers.IntegerField(min_value=1, max_value=MAX_EXTENSION_HOURS, **optional)
    return text(param.max_length, required=param.required)


# The body of a workflow action: its fields are the parameters that
# ``orders.inputs`` declares for ``action``. (No docstrings on the bodies: the
# schema describes each with StrictSerializer's.)
class ActionSerializer(StrictSerializer):
    action: str = ""

    def taken(self):
        return inputs.params_of(self.action)

    def get_fields(self):
        return {param.name: _body_field(param) for param in self.taken()}


# The body of every action without parameters of its own: an optional note.
class NoteSerializer(ActionSerializer):
    def taken(self):
        return inputs.NOTE_ONLY


class ShipSerializer(ActionSerializer):
    action = Action.SHIP


class VerifyPendingSerializer(ActionSerializer):
    action = Action.VERIFY_PENDING


class AppraiseSerializer(ActionSerializer):
    action = Action.APPRAISE


class ReportBlockedSerializer(ActionSerializer):
    action = Action.REPORT_BLOCKED


class SignInOnBehalfSerializer(ActionSerializer):
    action = Action.SIGN_IN_ON_BEHALF


class ExtendDeadlineSerializer(ActionSerializer):
    action = Action.EXTEND_DEADLINE


class RefundSerializer(ActionSerializer):
    action = Action.REFUND


_BODIES = {
    body.action: body
    for body in (
        ShipSerializer,
        VerifyPendingSerializer,
        AppraiseSerializer,
        ReportBlockedSerializer,
        SignInOnBehalfSerializer,
        ExtendDeadlineSerializer,
        RefundSerializer,
    )
}


def body_of(action):
    """The serializer of ``action``'s body: its own, or ``NoteSerializer``."""
    return _BODIES.get(action, NoteSerializer)


class CarrierEventSerializer(StrictSerializer):
    tracking_no = text(64)
    carrier = text(64)
    status = serializers.ChoiceField(choices=ScanStatus.choices)
    occurred_at = TimeField()
    order_no = text(64, required=False)


class CarrierBatchSerializer(StrictSerializer):
    events = CarrierEventSerializer(many=True, allow_empty=False, max_length=500)


class CarrierResultSerializer(serializers.Serializer):
    tracking_no = serializers.CharField()
    status = serializers.CharField()
    duplicate = serializers.BooleanField()
    outcome = serializers.CharField()
    order_no = serializers.CharField(allow_null=True)


class CarrierBatchResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField()
    results = CarrierResultSerializer(many=True)
