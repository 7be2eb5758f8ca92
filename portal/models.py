from decimal import Decimal

from django.conf import settings
from django.contrib.auth.models import AbstractUser, UserManager
from django.core.validators import MinValueValidator, RegexValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from portal.choices import OrganisationKind
from portal.sealing import SealedTextField

code_validator = RegexValidator(
    r"^[A-Z0-9][A-Z0-9_-]*$", _("Use capital letters, digits, '-' and '_' only, e.g. M-DEMO-1.")
)


class Organisation(models.Model):
    """A merchant, an appraisal provider, or the platform itself."""

    code = models.CharField(_("code"), max_length=32, unique=True, validators=[code_validator])
    name = models.CharField(_("name"), max_length=200)
    kind = models.CharField(_("kind"), max_length=16, choices=OrganisationKind.choices)
    appraisal_fee = models.DecimalField(
        _("appraisal fee (CNY)"),
        max_digits=10,
        decimal_places=2,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Providers only: charged to the merchant once per appraised item."),
    )
    logistics_fee = models.DecimalField(
        _("logistics fee (CNY)"),
        max_digits=10,
        decimal_places=2,
        default=Decimal("0.00"),
        validators=[MinValueValidator(Decimal("0"))],
        help_text=_("Providers only: charged to the merchant for each online waybill picked up."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["code"]
        verbose_name = _("organisation")
        verbose_name_plural = _("organisations")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(appraisal_fee__gte=0) & models.Q(logistics_fee__gte=0),
                name="organisation_fees_not_negative",
            ),
        ]

    def __str__(self):
        return f"{self.name} ({self.code})"

    @property
    def is_platform(self) -> bool:
        return self.kind == OrganisationKind.PLATFORM

    @property
    def is_merchant(self) -> bool:
        return self.kind == OrganisationKind.MERCHANT

    @property
    def is_provider(self) -> bool:
        return self.kind == OrganisationKind.PROVIDER


class PortalUserManager(UserManager):
    def get_queryset(self):
        # Every request needs the user's organisation for its scope: load both at once.
        return super().get_queryset().select_related("organisation")


class User(AbstractUser):
    """A person who works for exactly one organisation (administrators may have none)."""

    organisation = models.ForeignKey(
        Organisation,
        verbose_name=_("organisation"),
        on_delete=models.PROTECT,
        related_name="users",
        null=True,
        blank=True,
    )
    language = models.CharField(
        _("language"), max_length=10, choices=settings.LANGUAGES, default=settings.LANGUAGE_CODE
    )

    objects = PortalUserManager()

    class Meta(AbstractUser.Meta):
        verbose_name = _("user")
        verbose_name_plural = _("users")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(organisation__isnull=False) | models.Q(is_superuser=True),
                name="user_has_organisation_unless_superuser",
            ),
        ]

    @property
    def kind(self) -> str | None:
        return self.organisation.kind if self.organisation_id else None


class ApiKeyQuerySet(models.QuerySet):
    def active(self):
        return self.filter(revoked_at__isnull=True)


class ApiKey(models.Model):
    """A key an organisation's integration uses (``Authorization: Token <key>``).

    The key is shown once, when it is made; only its SHA-256 is kept, with a
    short public prefix to find it by.
    """

    PREFIX_LENGTH = 8

    organisation = models.ForeignKey(
        Organisation, verbose_name=_("organisation"), on_delete=models.PROTECT, related_name="api_keys"
    )
    name = models.CharField(_("name"), max_length=100)
    prefix = models.CharField(_("prefix"), max_length=PREFIX_LENGTH, unique=True, editable=False)
    key_hash = models.CharField(_("key hash"), max_length=64, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("API key")
        verbose_name_plural = _("API keys")

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class CarrierIntegration(models.Model):
    """A carrier that posts scans to the webhook, signing each body with its secret.

    The secret is sealed in the database (``portal.sealing``) and shown once,
    when it is made; the integration signs only for its own carrier codes.
    """

    name = models.CharField(_("name"), max_length=100, unique=True)
    secret = SealedTextField(_("signing secret"), editable=False)
    carrier_codes = models.CharField(
        _("carrier codes"),
        max_length=200,
        help_text=_("The carriers this integration may send scans for, separated by commas, e.g. “SF, YTO”."),
        validators=[
            RegexValidator(
                r"^\s*[A-Za-z0-9_.-]+(\s*,\s*[A-Za-z0-9_.-]+)*\s*$",
                _("List carrier codes (letters, digits, “-”, “_”, “.”) separated by commas."),
            )
        ],
    )
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("carrier integration")
        verbose_name_plural = _("carrier integrations")

    def __str__(self):
        return self.name

    @property
    def codes(self) -> frozenset[str]:
        """The carrier codes this integration may sign for, upper-cased."""
        return carrier_codes_of(self.carrier_codes)


def carrier_codes_of(text: str) -> frozenset[str]:
    """Carrier codes written as ``"SF, yto"``, as a set of upper-case codes."""
    return frozenset(code.strip().upper() for code in text.replace(";", ",").split(",") if code.strip())


class IdempotencyRecord(models.Model):
    """The first answer to a POST sent with an ``Idempotency-Key``, replayed to retries for a day."""

    owner = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField()
    body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["owner", "key"], name="idempotency_key_once_per_owner")]

    def __str__(self):
        return f"{self.owner} {self.key}"


class NotificationKind(models.TextChoices):
    """What a notification is about. A ``…_summary`` kind is what one sweep
    tells one person about many causes of the kind it sums up
    (``portal.notify.SUMMARY_OF``)."""

    CASE_OPENED = "case_opened", _("Risk case opened")
    CASE_OPENED_SUMMARY = "case_opened_summary", _("Risk cases found by the sweep")
    DEADLINE_AT_RISK = "deadline_at_risk", _("Order near its deadline")
    DEADLINE_AT_RISK_SUMMARY = "deadline_at_risk_summary", _("Orders near their deadline")
    ESCALATION_OPENED = "escalation_opened", _("Escalation opened")
    ESCALATION_OPENED_SUMMARY = "escalation_opened_summary", _("Escalations opened by the sweep")
    ESCALATION_ASSIGNED = "escalation_assigned", _("Escalation assigned")
    ESCALATION_COMMENTED = "escalation_commented", _("Comment on an escalation")
    ESCALATION_CLOSED = "escalation_closed", _("Escalation resolved or rejected")
    ESCALATION_REMINDER = "escalation_reminder", _("Escalation waiting for a first response")
    ESCALATION_REMINDER_SUMMARY = "escalation_reminder_summary", _("Escalations waiting for a first response")
    DAILY_DIGEST = "daily_digest", _("Daily digest")


class Delivery(models.TextChoices):
    IMMEDIATELY = "immediately", _("Immediately")
    DIGEST = "digest", _("In the daily digest")
    OFF = "off", _("Off")


class EmailStatus(models.TextChoices):
    PENDING = "pending", _("Waiting to be sent")
    SENDING = "sending", _("Being sent")
    SENT = "sent", _("Sent")
    FAILED = "failed", _("Failed")
    DIGEST = "digest", _("Waiting for the daily digest")
    DIGESTED = "digested", _("Sent in a digest")
    OFF = "off", _("Not emailed (switched off)")


class Notification(models.Model):
    """One message to one person about one cause: an inbox item and, unless
    the person switched it off, an email (the outbox row of that email).

    Written in the same transaction as its cause; ``key`` names the cause, so
    the same cause reaches a person once however often it is announced.
    """

    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("recipient"), on_delete=models.CASCADE, related_name="notifications"
    )
    kind = models.CharField(_("kind"), max_length=32, choices=NotificationKind.choices)
    key = models.CharField(_("cause"), max_length=120)
    context = models.JSONField(_("details"), default=dict)
    link = models.CharField(_("link"), max_length=300, blank=True)
    created_at = models.DateTimeField(_("created"))
    read_at = models.DateTimeField(_("read"), null=True, blank=True)
    email_status = models.CharField(_("email"), max_length=16, choices=EmailStatus.choices)
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    claimed_at = models.DateTimeField(_("being sent since"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    # When the current run of failed attempts began; the email is retried for
    # NOTIFY_RETRY_WINDOW_HOURS from then. Cleared when it is sent again by hand.
    failing_since = models.DateTimeField(_("failing since"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        constraints = [models.UniqueConstraint(fields=["recipient", "key"], name="notification_once_per_cause")]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(email_status__in=["pending", "sending"]),
                name="notification_outbox",
            ),
            models.Index(
                fields=["recipient", "created_at"], condition=models.Q(read_at__isnull=True), name="notification_unread"
            ),
        ]

    def __str__(self):
        return f"{self.kind} → {self.recipient_id}"


class NotificationPreference(models.Model):
    """How a person wants to be emailed about one kind of notification."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preferences")
    kind = models.CharField(_("kind"), max_length=32, choices=NotificationKind.choices)
    delivery = models.CharField(_("delivery"), max_length=16, choices=Delivery.choices)

    class Meta:
        verbose_name = _("notification preference")
        verbose_name_plural = _("notification preferences")
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="one_preference_per_kind")]

    def __str__(self):
        return f"{self.user_id} {self.kind} {self.delivery}"


class Heartbeat(models.Model):
    """The last time a periodic job proved it runs: one row per name.

    Beat's ``beat-heartbeat`` entry writes the ``beat`` row through a worker,
    so a recent row means beat, the broker and the deadlines worker all work;
    ``/health/`` turns red when it is old.
    """

    name = models.CharField(max_length=40, primary_key=True)
    beat_at = models.DateTimeField()

    def __str__(self):
        return f"{self.name} @ {self.beat_at:%Y-%m-%d %H:%M:%S}"
