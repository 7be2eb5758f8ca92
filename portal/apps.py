from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PortalConfig(AppConfig):
    name = "portal"
    verbose_name = _("Portal")

    def ready(self):
        # Registers how the API schema describes key authentication.
        from portal import api_auth  # noqa: F401
        from portal.pgtimes import connect

        connect()  # PostgreSQL's times read by psycopg's compiled loader
