from django.db import models
from django.utils.translation import gettext_lazy as _


class OrganisationKind(models.TextChoices):
    PLATFORM = "platform", _("Platform")
    MERCHANT = "merchant", _("Merchant")
    PROVIDER = "provider", _("Appraisal provider")
