from django.db import models
from django.utils.translation import gettext_lazy as _


class Rule(models.TextChoices):
    PENDING_SIGN_IN = "pending_sign_in", _("Unverified pending sign-in")
    FLOW_BLOCKED = "flow_blocked", _("Online flow blocked")
    OFFLINE_SHIPMENT = "offline_shipment", _("Shipped offline")
    SPLIT_ORDER = "split_order", _("Split orders")
    DUPLICATE_APPRAISAL_FEE = "duplicate_appraisal_fee", _("Duplicate appraisal fee")
    DUPLICATE_LOGISTICS_FEE = "duplicate_logistics_fee", _("Duplicate logistics fee")
    UNCONFIRMABLE_SPLIT_ORDER = "unconfirmable_split_order", _("Split order that can never be confirmed")
    STALLED = "stalled", _("Stalled")
    DEADLINE_AT_RISK = "deadline_at_risk", _("Deadline at risk")
    FORECAST_MISS = "forecast_miss", _("Forecast to miss the deadline")


# Rules about a whole split group: their case belongs to every order of the
# group (its trade and SKU), not only to the order it is filed under.
GROUP_RULES = frozenset({Rule.SPLIT_ORDER, Rule.DUPLICATE_APPRAISAL_FEE, Rule.DUPLICATE_LOGISTICS_FEE})


class Severity(models.TextChoices):
    MEDIUM = "medium", _("Medium")
    HIGH = "high", _("High")
    CRITICAL = "critical", _("Critical")


class CaseStatus(models.TextChoices):
    OPEN = "open", _("Open")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    ESCALATED = "escalated", _("Escalated")
    RESOLVED = "resolved", _("Resolved")


# A case in one of these states is live: at most one per rule and subject.
LIVE_STATUSES = (CaseStatus.OPEN, CaseStatus.ACKNOWLEDGED, CaseStatus.ESCALATED)


class Resolution(models.TextChoices):
    CONDITION_CLEARED = "condition_cleared", _("The condition cleared")
    SUPERSEDED = "superseded", _("Superseded by a newer case")
    BY_OWNER = "by_owner", _("Resolved by a person")


class CaseEventKind(models.TextChoices):
    OPENED = "opened", _("Opened")
    ACKNOWLEDGED = "acknowledged", _("Acknowledged")
    ESCALATED = "escalated", _("Escalated")
    RESOLVED = "resolved", _("Resolved")
    SPLIT_CHOICE = "split_choice", _("Merchant's split-order choice")


class EscalationStatus(models.TextChoices):
    OPEN = "open", _("Open")
    IN_PROGRESS = "in_progress", _("In progress")
    RESOLVED = "resolved", _("Resolved")
    REJECTED = "rejected", _("Rejected")


LIVE_ESCALATIONS = (EscalationStatus.OPEN, EscalationStatus.IN_PROGRESS)


class EscalationCategory(models.TextChoices):
    FLOW_BLOCKED = "flow_blocked", _("Online flow blocked")
    OFFLINE_SHIPMENT = "offline_shipment", _("Shipped offline")
    SIGN_IN = "sign_in", _("Cannot sign in or verify")
    SPLIT_ORDER = "split_order", _("Split orders and fees")
    DEADLINE = "deadline", _("Deadline")
    OVERDUE_CASE = "overdue_case", _("Case overdue")
    OTHER = "other", _("Other")
