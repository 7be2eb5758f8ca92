from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class RisksConfig(AppConfig):
    name = "risks"
    verbose_name = _("Risk cases")

    def ready(self):
        from orders import workflow
        from risks import reactions

        workflow.on_step(reactions.on_step)
