from collections.abc import Mapping
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import connection, models
from django.db.models import BooleanField, Exists, F, OuterRef, Q
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce
from django.utils.translation import gettext_lazy as _

from orders.choices import (
    OPEN_STATES,
    TERMINAL_STATES,
    Action,
    AppraisalResult,
    BlockedStage,
    FeeKind,
    ImportStatus,
    OrderState,
    ScanOutcome,
    ScanStatus,
    SplitChoice,
)
from orders.inputs import identifier_validator
from portal.choices import EventSource, OrganisationKind
from portal.scoping import ScopedQuerySet

# An open order, said as "in none of the four terminal states" rather than
# "in one of the ten open ones". Seven of the order table's indexes hold
# open orders only, and PostgreSQL plans a query over the table by proving,
# term by term, that its condition implies each index's: said the same way
# the proof is a few comparisons per index, while ten listed states against
# ten took a hundred, each evaluated, for every index and every mention of
# the table (docs/decisions.md). Queries that mean "open" say ``OPEN_ORDERS``.
OPEN_ORDERS = ~Q(state__in=sorted(TERMINAL_STATES))
# A parcel at the provider waiting to be signed for (SPEC §3 pending_sign_in):
# arrived, or still inbound with the carrier's delivery scan on record; and
# since when. The state test comes first so the query matches the partial
# index ``order_pending_since``.
PENDING_STATES = [OrderState.INBOUND, OrderState.ARRIVED]
PENDING_SIGN_IN_Q = Q(state__in=PENDING_STATES) & (Q(state=OrderState.ARRIVED) | Q(inbound_delivered_at__isnull=False))
ARRIVED_AT = Coalesce("inbound_delivered_at", "state_changed_at")
# Kept as "no appraisal needed" and not yet handed to the carrier.
UNSHIPPED_STATES = [OrderState.APPRAISED, OrderState.INSPECTED, OrderState.PACKED, OrderState.WAYBILL_PRINTED]
KEPT_UNSHIPPED = Q(appraisal_result=AppraisalResult.NOT_REQUIRED, state__in=UNSHIPPED_STATES)


def over_sla_q(sla: Mapping[str, timedelta], now: datetime) -> Q:
    """Orders in one state longer than that state's SLA: ``sla`` maps a state
    to the time an order may spend in it (``risks.models.RiskSettings.sla``).
    An order in a state without an SLA is never over it. The ``stalled`` rule
    and the dashboard both ask this, so they always agree."""
    condition = Q(pk__in=[])
    for state, limit in sla.items():
        condition |= Q(state=state, state_changed_at__lte=now - limit)
    return condition


def any_over_sla(sla: Mapping[str, timedelta], now: datetime):
    """Whether any order is over its state's SLA (``over_sla_q``), as a
    condition that does not depend on the row it is asked of. On PostgreSQL
    one statement over the states, each a range of the open orders' state-age
    index, planned once rather than once per state; elsewhere ``Exists``."""
    if connection.vendor != "postgresql":
        return Exists(Order.objects.filter(over_sla_q(sla, now)))
    table = connection.ops.quote_name(Order._meta.db_table)
    return RawSQL(
        "EXISTS (SELECT 1 FROM unnest(%s::text[], %s::timestamptz[]) AS sla(code, since) "
        f"WHERE EXISTS (SELECT 1 FROM {table} AS o WHERE sla.code = o.state AND o.state <> ALL(%s::text[]) "
        "AND o.state_changed_at <= sla.since))",
        ([str(state) for state in sla], [now - limit for limit in sla.values()], sorted(TERMINAL_STATES)),
        output_field=BooleanField(),
    )


class OrderQuerySet(ScopedQuerySet):
    """Orders: the platform sees all, a merchant its own, a provider those assigned to it."""

    def open(self):
        return self.filter(OPEN_ORDERS)

    def split_group(self, trade_no, sku):
        return self.filter(trade_no=trade_no, sku=sku)

    def over_sla(self, sla, now):
        """Orders in their state longer than its SLA (``over_sla_q``)."""
        return self.filter(over_sla_q(sla, now))

    def pending_sign_in(self):
        """Parcels at the provider waiting to be signed for (``PENDING_SIGN_IN_Q``)."""
        return self.filter(PENDING_SIGN_IN_Q)

    def for_lists(self):
        """What every order table shows, in one query; ``risks.models.attach_live_cases``
        adds the page's risk cases in one more. The merchant's and provider's
        names and codes come as values of the row (``merchant_name``,
        ``provider_code``…): a list shows nothing else of them, and two
        organisation instances a row were a fifth of a page's objects."""
        return self.annotate(
            merchant_name=F("merchant__name"),
            merchant_code=F("merchant__code"),
            provider_name=F("provider__name"),
            provider_code=F("provider__code"),
            in_split_group=in_split_group(),
        )


def in_split_group():
    """True for an order when another order shares its trade and SKU."""
    return Exists(Order.objects.filter(trade_no=OuterRef("trade_no"), sku=OuterRef("sku")).exclude(pk=OuterRef("pk")))


class Order(models.Model):
    """One platform sub-order carrying the appraisal service (SPEC §2).

    ``state`` and the fields the workflow owns are changed only by
    ``orders.workflow``; every change bumps ``version`` and writes one
    ``OrderEvent`` whose ``seq`` is the new version.
    """

    # Unique by ``order_no_unique`` (a constraint, not ``unique=True``, which
    # adds a second index for ``LIKE 'prefix%'`` that no query asks).
    order_no = models.CharField(_("order number"), max_length=64, validators=[identifier_validator])
    trade_no = models.CharField(_("trade number"), max_length=64, validators=[identifier_validator])
    merchant = models.ForeignKey(
        "portal.Organisation",
        verbose_name=_("merchant"),
        on_delete=models.PROTECT,
        related_name="merchant_orders",
        limit_choices_to={"kind": OrganisationKind.MERCHANT},
        # ``order_merchant_state`` leads with it: a second index would only be written.
        db_index=False,
    )
    provider = models.ForeignKey(
        "portal.Organisation",
        verbose_name=_("provider"),
        on_delete=models.PROTECT,
        related_name="provider_orders",
        limit_choices_to={"kind": OrganisationKind.PROVIDER},
        # ``order_provider_state`` leads with it: a second index would only be written.
        db_index=False,
    )
    sku = models.CharField(_("SKU"), max_length=64, validators=[identifier_validator])
    item_title = models.CharField(_("item"), max_length=300)
    quantity = models.PositiveIntegerField(_("quantity"), default=1, validators=[MinValueValidator(1)])
    amount = models.DecimalField(
        _("amount (CNY)"), max_digits=12, decimal_places=2, validators=[MinValueValidator(Decimal("0"))]
    )
    buyer_name = models.CharField(_("buyer"), max_length=100, blank=True)
    buyer_phone = models.CharField(_("buyer's phone"), max_length=32, blank=True)
    buyer_address = models.CharField(_("delivery address"), max_length=300, blank=True)
    paid_at = models.DateTimeField(_("paid at"))
    auto_confirm_at = models.DateTimeField(_("automatic confirmation deadline"))

    state = models.CharField(
        _("state"), max_length=24, choices=OrderState.choices, default=OrderState.AWAITING_SHIPMENT
    )
    appraisal_result = models.CharField(
        _("appraisal result"), max_length=16, choices=AppraisalResult.choices, blank=True
    )
    flow_blocked = models.BooleanField(_("flow blocked"), default=False)
    blocked_stage = models.CharField(_("blocked at"), max_length=16, choices=BlockedStage.choices, blank=True)
    blocked_reason = models.TextField(_("why the flow is blocked"), blank=True)

    inbound_carrier = models.CharField(_("inbound carrier"), max_length=64, blank=True)
    inbound_tracking_no = models.CharField(_("inbound tracking number"), max_length=64, blank=True)
    inbound_delivered_at = models.DateTimeField(_("delivered to provider at"), null=True, blank=True)

    waybill_no = models.CharField(_("online waybill"), max_length=64, blank=True)
    waybill_printed_at = models.DateTimeField(_("waybill printed at"), null=True, blank=True)
    picked_up_at = models.DateTimeField(_("picked up at"), null=True, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    confirmed_at = models.DateTimeField(_("confirmed at"), null=True, blank=True)

    state_changed_at = models.DateTimeField(_("state changed at"))
    version = models.PositiveIntegerField(_("version"), default=1)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    objects = OrderQuerySet.as_manager()

    class Meta:
        ordering = ["auto_confirm_at", "id"]
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        indexes = [
            # A split group's orders and whose they are, read from the index
            # alone: a group's risk cases are shown to every organisation with
            # an order in it (``risks.models.RiskCaseQuerySet``), and
            # ``in_split_group`` looks for another order of the group.
            models.Index(fields=["trade_no", "sku", "provider", "merchant", "id"], name="order_split_group"),
            # Whose an order is, read from the index alone: a risk case is
            # shown to the organisations of its order.
            models.Index(fields=["id", "provider", "merchant"], name="order_parties"),
            models.Index(fields=["provider", "state", "auto_confirm_at"], name="order_provider_state"),
            models.Index(fields=["merchant", "state", "auto_confirm_at"], name="order_merchant_state"),
            # The lists' first page (open orders, nearest deadline first, the
            # key breaking ties) read in order from the index, for a provider's
            # and a merchant's people; the platform's has ``order_open_deadline``.
            models.Index(
                fields=["provider", "auto_confirm_at", "id"], condition=OPEN_ORDERS, name="order_provider_open"
            ),
            models.Index(
                fields=["merchant", "auto_confirm_at", "id"], condition=OPEN_ORDERS, name="order_merchant_open"
            ),
            # The worklists' tab counts (``orders.worklists.counts``), from the
            # index alone: they grow with the provider's open work, not its history.
            models.Index(
                fields=["provider", "state", "flow_blocked", "appraisal_result", "inbound_delivered_at"],
                condition=OPEN_ORDERS,
                name="order_provider_work",
            ),
            # The deadline sweep reads only open orders by deadline.
            models.Index(fields=["auto_confirm_at"], condition=OPEN_ORDERS, name="order_open_deadline"),
            models.Index(fields=["state", "state_changed_at"], condition=OPEN_ORDERS, name="order_open_state_age"),
            models.Index(fields=["waybill_no"], condition=~Q(waybill_no=""), name="order_waybill"),
            models.Index(ARRIVED_AT, condition=Q(state__in=PENDING_STATES), name="order_pending_since"),
            models.Index(fields=["state"], condition=Q(flow_blocked=True), name="order_blocked"),
            models.Index(fields=["inbound_tracking_no"], condition=~Q(inbound_tracking_no=""), name="order_inbound_no"),
            # Kept orders of a split group ("no appraisal needed") that have not
            # left the provider: the few the sweep checks for a missing waybill or pickup.
            models.Index(fields=["state"], condition=KEPT_UNSHIPPED, name="order_kept_unshipped"),
            # Whether a split group still has an open order, answered from the
            # index alone when it has none (the sweep closes such groups).
            models.Index(fields=["trade_no", "sku"], condition=OPEN_ORDERS, name="order_open_split_group"),
            # The dashboard's tally (``orders.tallies``) counts open orders per
            # merchant, provider, state, deadline and time in state, and adds
            # up their amounts, from this index alone. (The trailing columns
            # stand in for INCLUDE, which SQLite lacks.)
            models.Index(
                fields=["auto_confirm_at", "provider", "state", "state_changed_at", "amount", "merchant"],
                condition=OPEN_ORDERS,
                name="order_open_board",
            ),
            # Losses: the orders auto-refunded at their deadline, by when.
            models.Index(
                fields=["state_changed_at", "provider", "merchant", "amount"],
                condition=Q(state=OrderState.AUTO_REFUNDED),
                name="order_auto_refunded",
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["order_no"], name="order_no_unique"),
            models.CheckConstraint(condition=Q(amount__gte=0), name="order_amount_not_negative"),
            models.CheckConstraint(condition=Q(quantity__gte=1), name="order_quantity_positive"),
            models.CheckConstraint(
                condition=Q(flow_blocked=False) | ~Q(blocked_stage=""), name="order_blocked_has_stage"
            ),
            # Only the states the workflow knows: "open" is said as "in no
            # terminal state" (``OPEN_ORDERS``), which holds only while no
            # other value can be stored.
            models.CheckConstraint(condition=Q(state__in=OrderState.values), name="order_state_known"),
        ]

    def __str__(self):
        return self.order_no

    @property
    def is_terminal(self) -> bool:
        return self.state not in OPEN_STATES

    def buyer_for(self, organisation) -> dict:
        """The buyer's details as ``organisation`` may see them: providers get
        them masked, as on a privacy waybill (隐私面单)."""
        shown = mask_buyer(
            {"buyer_name": self.buyer_name, "buyer_phone": self.buyer_phone, "buyer_address": self.buyer_address},
            organisation,
        )
        return {"name": shown["buyer_name"], "phone": shown["buyer_phone"], "address": shown["buyer_address"]}

    def split_group_orders(self):
        """Every order of this order's split group, itself included."""
        return Order.objects.split_group(self.trade_no, self.sku)


def _mask_name(name: str) -> str:
    return name[:1] + "*" * max(len(name) - 1, 0)


def _mask_phone(phone: str) -> str:
    return phone[:3] + "****" + phone[-4:] if len(phone) >= 8 else "*" * len(phone)


def _mask_address(address: str) -> str:
    return address[:6] + ("…" if len(address) > 6 else "")


BUYER_MASKS = {"buyer_name": _mask_name, "buyer_phone": _mask_phone, "buyer_address": _mask_address}


def mask_buyer(values: dict, organisation) -> dict:
    """``values`` with any buyer field masked when ``organisation`` is a
    provider (or unknown); other keys and other viewers pass unchanged."""
    if organisation is not None and not organisation.is_provider:
        return values
    return {key: BUYER_MASKS[key](str(value or "")) if key in BUYER_MASKS else value for key, value in values.items()}


class AppendOnlyError(Exception):
    """An attempt to change or delete a recorded event."""


class OrderEvent(models.Model):
    """One thing that happened to an order. Written once, in the same
    transaction as the change, and never changed or deleted (SPEC §2.2, 4)."""

    order = models.ForeignKey(Order, verbose_name=_("order"), on_delete=models.PROTECT, related_name="events")
    seq = models.PositiveIntegerField(_("sequence"))
    action = models.CharField(_("action"), max_length=24, choices=Action.choices)
    source = models.CharField(_("source"), max_length=16, choices=EventSource.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    actor_organisation = models.ForeignKey(
        "portal.Organisation",
        verbose_name=_("organisation"),
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
    )
    from_state = models.CharField(_("from"), max_length=24, choices=OrderState.choices, blank=True)
    to_state = models.CharField(_("to"), max_length=24, choices=OrderState.choices)
    payload = models.JSONField(_("details"), default=dict, blank=True)
    occurred_at = models.DateTimeField(_("occurred at"))
    recorded_at = models.DateTimeField(_("recorded at"), auto_now_add=True)

    class Meta:
        ordering = ["order", "seq"]
        verbose_name = _("order event")
        verbose_name_plural = _("order events")
        constraints = [models.UniqueConstraint(fields=["order", "seq"], name="order_event_seq_unique")]
        indexes = [
            # The few offline shipments among millions of events, which the
            # sweep's ``offline_shipment`` rule reads every run.
            models.Index(
                fields=["order", "seq"], condition=Q(action=Action.OFFLINE_SHIPMENT), name="order_event_offline"
            ),
        ]

    def __str__(self):
        return f"{self.order_id}#{self.seq} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise AppendOnlyError("order events are append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError("order events are append-only")

    @property
    def changes_state(self) -> bool:
        return self.from_state != self.to_state


class FeeCharge(models.Model):
    """What the merchant is charged (SPEC §2.3): one appraisal fee per order
    that completes or returns with pass/fail, one logistics fee per online
    waybill picked up. The amount is the provider's fee at that moment."""

    order = models.ForeignKey(Order, verbose_name=_("order"), on_delete=models.PROTECT, related_name="fees")
    kind = models.CharField(_("fee"), max_length=16, choices=FeeKind.choices)
    amount = models.DecimalField(_("amount (CNY)"), max_digits=10, decimal_places=2)
    waybill_no = models.CharField(_("online waybill"), max_length=64, blank=True)
    charged_at = models.DateTimeField(_("charged at"))

    class Meta:
        ordering = ["charged_at", "id"]
        verbose_name = _("fee charge")
        verbose_name_plural = _("fee charges")
        constraints = [models.UniqueConstraint(fields=["order", "kind"], name="fee_once_per_order_and_kind")]

    def __str__(self):
        return f"{self.get_kind_display()} {self.amount} ({self.order_id})"


class SplitGroup(models.Model):
    """The merchant's answer for a split group (orders sharing ``trade_no`` and ``sku``)."""

    trade_no = models.CharField(_("trade number"), max_length=64)
    sku = models.CharField(_("SKU"), max_length=64)
    choice = models.CharField(_("merchant's choice"), max_length=1, choices=SplitChoice.choices, blank=True)
    chosen_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    chosen_at = models.DateTimeField(_("chosen at"), null=True, blank=True)
    # Set by the sweep once every order of the group is finished; the group
    # rules stop reading it. A new order joining the group opens it again.
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)

    class Meta:
        verbose_name = _("split group")
        verbose_name_plural = _("split groups")
        constraints = [models.UniqueConstraint(fields=["trade_no", "sku"], name="split_group_unique")]
        indexes = [
            models.Index(fields=["trade_no", "sku"], condition=Q(closed_at__isnull=True), name="split_group_open"),
            # The dashboard's duplicate fees read the groups closed lately.
            models.Index(fields=["closed_at"], condition=Q(closed_at__isnull=False), name="split_group_closed"),
        ]

    def __str__(self):
        return f"{self.trade_no} / {self.sku}"


class CarrierScan(models.Model):
    """A scan reported by a carrier, kept whether or not it moved an order.

    Scans for a number no order has yet wait as ``pending`` and are applied
    when an order gets that number; the same scan reported twice is stored once.
    """

    carrier = models.CharField(_("carrier"), max_length=64)
    tracking_no = models.CharField(_("tracking number"), max_length=64)
    status = models.CharField(_("status"), max_length=16, choices=ScanStatus.choices)
    occurred_at = models.DateTimeField(_("occurred at"))
    order_no = models.CharField(_("order number named by the carrier"), max_length=64, blank=True)
    order = models.ForeignKey(
        Order, verbose_name=_("order"), on_delete=models.PROTECT, null=True, blank=True, related_name="scans"
    )
    outcome = models.CharField(_("outcome"), max_length=16, choices=ScanOutcome.choices)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True)

    class Meta:
        ordering = ["occurred_at", "id"]
        verbose_name = _("carrier scan")
        verbose_name_plural = _("carrier scans")
        constraints = [
            models.UniqueConstraint(
                fields=["carrier", "tracking_no", "status", "occurred_at", "order_no"], name="carrier_scan_once"
            ),
        ]
        indexes = [
            models.Index(
                fields=["tracking_no", "occurred_at"],
                condition=Q(outcome=ScanOutcome.PENDING),
                name="carrier_scan_pending",
            ),
            models.Index(
                fields=["order_no"],
                condition=Q(outcome=ScanOutcome.PENDING) & ~Q(order_no=""),
                name="carrier_scan_pending_order",
            ),
        ]

    def __str__(self):
        return f"{self.carrier} {self.tracking_no} {self.status}"


class StageDuration(models.Model):
    """How long one stage of the online flow takes: the median and the 90th
    percentile of the time orders spent in ``stage`` (a state) before moving
    on along the flow, over the orders that left it during the ``window``
    before ``computed_at``. Per provider; with ``provider`` empty, over all
    providers (the figure a provider with too few samples is forecast by);
    with ``carrier`` set, the journey to the buyer by that carrier.

    Derived from the order events and replaced as a whole by
    ``orders.durations.refresh``; one row per group with at least one sample.
    The dashboard's provider scorecard and the forecasts (``orders.forecast``)
    read it instead of the event log.
    """

    provider = models.ForeignKey(
        "portal.Organisation",
        verbose_name=_("provider"),
        on_delete=models.CASCADE,
        related_name="stage_durations",
        limit_choices_to={"kind": OrganisationKind.PROVIDER},
        null=True,
        blank=True,
    )
    carrier = models.CharField(_("carrier"), max_length=64, blank=True, default="")
    stage = models.CharField(_("stage"), max_length=24, choices=OrderState.choices)
    median = models.DurationField(_("median"))
    p90 = models.DurationField(_("90th percentile"))
    samples = models.PositiveIntegerField(_("orders measured"))
    window = models.DurationField(_("measured over"))
    computed_at = models.DateTimeField(_("computed at"))

    class Meta:
        ordering = ["provider", "carrier", "stage"]
        verbose_name = _("stage duration")
        verbose_name_plural = _("stage durations")
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "stage"], condition=Q(provider__isnull=False), name="stage_duration_once"
            ),
            models.UniqueConstraint(
                fields=["carrier", "stage"], condition=Q(provider__isnull=True), name="stage_duration_pooled_once"
            ),
        ]

    def __str__(self):
        return f"{self.provider_id or self.carrier or '*'} {self.stage}: {self.median} / {self.p90}"


class OpenOrderTally(models.Model):
    """Open orders added up as of ``computed_at``: per merchant, provider,
    state and deadline band (``band``, a code of the dashboard's bands of
    hours to the deadline), how many, their amount, and how many had been in
    their state longer than its SLA.

    Replaced as a whole every minute by ``orders.tallies.refresh``. The
    dashboard reads it instead of adding up every open order on each request,
    and says when it was counted; the lists its numbers link to are live.
    """

    merchant = models.ForeignKey(
        "portal.Organisation", verbose_name=_("merchant"), on_delete=models.CASCADE, related_name="+"
    )
    provider = models.ForeignKey(
        "portal.Organisation", verbose_name=_("provider"), on_delete=models.CASCADE, related_name="+"
    )
    state = models.CharField(_("state"), max_length=24, choices=OrderState.choices)
    band = models.CharField(_("Hours to the deadline"), max_length=16)
    orders = models.PositiveIntegerField(_("orders"))
    amount = models.DecimalField(_("amount (CNY)"), max_digits=16, decimal_places=2)
    over_sla = models.PositiveIntegerField(_("Over the state's SLA"))
    computed_at = models.DateTimeField(_("computed at"))

    objects = ScopedQuerySet.as_manager()

    class Meta:
        ordering = ["merchant", "provider", "state", "band"]
        verbose_name = _("open orders tally")
        verbose_name_plural = _("open orders tallies")
        constraints = [
            models.UniqueConstraint(fields=["merchant", "provider", "state", "band"], name="open_order_tally_once")
        ]
        indexes = [models.Index(fields=["provider", "state"], name="open_order_tally_provider")]

    def __str__(self):
        return f"{self.merchant_id}/{self.provider_id} {self.state} {self.band}: {self.orders}"


class DuplicateFeeTallyQuerySet(models.QuerySet):
    """Each organisation sees the figures of its own scope; the platform (and
    an administrator) the whole platform's."""

    def visible_to(self, user):
        if not user.is_authenticated or not getattr(user, "is_active", True):
            return self.none()
        org = user.organisation if getattr(user, "organisation_id", None) else None
        if org is None:
            return self.filter(viewer__isnull=True) if user.is_superuser else self.none()
        return self.visible_to_organisation(org)

    def visible_to_organisation(self, org):
        if not org.is_active:
            return self.none()
        if org.is_platform:
            return self.filter(viewer__isnull=True)
        return self.filter(viewer=org)


class DuplicateFeeTally(models.Model):
    """Fees charged beyond correct handling (``orders.fees.extra_charges``)
    per local day, as ``viewer``'s scope counts them (a merchant's or a
    provider's own orders; none: the whole platform): the orders charged
    them, and how much, as of ``computed_at``. Only charges on the viewer's
    orders count, before and after, so a group that spans two merchants
    shows neither the other's fees.

    Replaced as a whole with ``OpenOrderTally`` by ``orders.tallies.refresh``.
    """

    viewer = models.ForeignKey(
        "portal.Organisation",
        verbose_name=_("seen by"),
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
    )
    day = models.DateField(_("Day"))
    orders = models.PositiveIntegerField(_("orders"))
    amount = models.DecimalField(_("amount (CNY)"), max_digits=16, decimal_places=2)
    computed_at = models.DateTimeField(_("computed at"))

    objects = DuplicateFeeTallyQuerySet.as_manager()

    class Meta:
        ordering = ["viewer", "day"]
        verbose_name = _("duplicate fees tally")
        verbose_name_plural = _("duplicate fees tallies")
        constraints = [
            models.UniqueConstraint(
                fields=["viewer", "day"], condition=Q(viewer__isnull=False), name="duplicate_fee_tally_once"
            ),
            models.UniqueConstraint(
                fields=["day"], condition=Q(viewer__isnull=True), name="duplicate_fee_tally_platform_once"
            ),
        ]

    def __str__(self):
        return f"{self.viewer_id or 'platform'} {self.day}: {self.amount}"


class ImportJobQuerySet(ScopedQuerySet):
    def visible_to_organisation(self, org):
        """An organisation's own imports only (a merchant's, or the platform's)."""
        if not org.is_active:
            return self.none()
        return self.filter(organisation=org)


class ImportJob(models.Model):
    """One spreadsheet of orders being imported (``orders.imports``).

    The file is kept here, so any worker can run the import and any web
    process can show its progress. Rows are imported in batches, each
    committed with the counters below, so a worker that dies mid-import
    leaves a job another worker resumes at ``done`` without losing or
    repeating a row.
    """

    organisation = models.ForeignKey(
        "portal.Organisation", verbose_name=_("organisation"), on_delete=models.PROTECT, related_name="+"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("imported by"),
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    file_name = models.CharField(_("file"), max_length=255)
    file_format = models.CharField(_("format"), max_length=8)
    # The file's column headings as it gives them (for the refused-rows file).
    headings = models.JSONField(_("column headings"), default=list)
    content = models.BinaryField(_("content"))  # the file as uploaded, compressed with zlib
    # Refusals are written in the language of the person who imported.
    language = models.CharField(_("language"), max_length=16)
    status = models.CharField(_("status"), max_length=16, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    total = models.PositiveIntegerField(_("rows"), default=0)
    done = models.PositiveIntegerField(_("rows done"), default=0)
    created = models.PositiveIntegerField(_("created"), default=0)
    unchanged = models.PositiveIntegerField(_("unchanged"), default=0)
    refused = models.PositiveIntegerField(_("refused"), default=0)
    # Why the whole file stopped, when it did (in ``language``).
    failure = models.TextField(_("why it failed"), blank=True)
    # How many times a worker took over a job another left unfinished.
    resumed = models.PositiveIntegerField(_("resumed"), default=0)
    lease = models.CharField(max_length=32, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(_("uploaded at"), auto_now_add=True)
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)

    objects = ImportJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("order import")
        verbose_name_plural = _("order imports")
        indexes = [
            models.Index(fields=["organisation", "-created_at"], name="import_job_recent"),
            models.Index(
                fields=["heartbeat_at"], condition=Q(status__in=["queued", "running"]), name="import_job_unfinished"
            ),
        ]

    def __str__(self):
        return self.file_name

    @property
    def finished(self) -> bool:
        return self.status in (ImportStatus.DONE, ImportStatus.FAILED)

    @property
    def percent(self) -> int:
        if self.status == ImportStatus.DONE:
            return 100
        return min(100, self.done * 100 // self.total) if self.total else 0


class ImportRefusal(models.Model):
    """A row of an import that was not imported, with why, and its cells as
    the file gave them (to hand back as a file to fix and import again)."""

    job = models.ForeignKey(ImportJob, on_delete=models.CASCADE, related_name="refusals")
    row = models.PositiveIntegerField(_("row"))
    column = models.CharField(_("column"), max_length=255, blank=True)
    reason = models.TextField(_("reason"))
    cells = models.JSONField(_("cells"), default=list)

    class Meta:
        ordering = ["job", "row"]
        verbose_name = _("refused row")
        verbose_name_plural = _("refused rows")
        constraints = [models.UniqueConstraint(fields=["job", "row"], name="import_refusal_once")]

    def __str__(self):
        return f"{self.job_id} row {self.row}"
