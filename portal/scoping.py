"""Scoping is security: every list, detail, action and export asks one of
these querysets what a person or an API key may see (SPEC §1)."""

from django.db import models


class ScopedQuerySet(models.QuerySet):
    """A queryset that knows what each kind of organisation may see.

    Subclasses name the path from their rows to the merchant and the provider
    (``merchant_path``/``provider_path``), or override
    ``visible_to_organisation``. Superusers without an organisation
    (administrators) see everything; anyone else without one sees nothing.
    """

    merchant_path = "merchant"
    provider_path = "provider"

    def visible_to(self, user):
        """What ``user`` may see: a person, or an API key's principal."""
        # A deactivated person sees nothing, even before their session ends
        # (portal.access signs them out; this is the second line).
        if not user.is_authenticated or not getattr(user, "is_active", True):
            return self.none()
        org = user.organisation if getattr(user, "organisation_id", None) else None
        if org is None:
            return self.all() if user.is_superuser else self.none()
        return self.visible_to_organisation(org)

    def visible_to_organisation(self, org):
        """What an organisation may see: the platform all, a merchant its own, a provider its
        assigned; a deactivated organisation nothing."""
        if not org.is_active:
            return self.none()
        if org.is_platform:
            return self.all()
        if org.is_merchant:
            return self.filter(**{self.merchant_path: org})
        if org.is_provider:
            return self.filter(**{self.provider_path: org})
        return self.none()
