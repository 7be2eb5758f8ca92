from django.db import models
from django.utils.translation import gettext_lazy as _


class OrganisationKind(models.TextChoices):
    PLATFORM = "platform", _("Platform")
    MERCHANT = "merchant", _("Merchant")
    PROVIDER = "provider", _("Appraisal provider")


class EventSource(models.TextChoices):
    """The channel a step came through; every recorded step names one."""

    WEB = "web", _("Web")
    API = "api", _("API")
    CARRIER = "carrier", _("Carrier")
    PLATFORM = "platform", _("Platform")
    SWEEP = "sweep", _("Sweep")
    IMPORT = "import", _("File import")
