"""The shape of a refusal. A step that may not happen raises a ``WorkflowError``
(or one of its kinds, ``orders.errors``): a stable ``code`` the API answers
with, the HTTP status it answers with, and a message a person can act on, in
the active language."""

from django.utils.translation import gettext_lazy as _


class WorkflowError(Exception):
    code = "workflow_error"
    http_status = 409
    template = _("This action is not possible.")

    def __init__(self, template=None, **params):
        self._template = template or self.template
        self.params = params
        super().__init__(self.code)

    @property
    def message(self) -> str:
        params = {key: str(value) for key, value in self.params.items()}
        return str(self._template) % params if params else str(self._template)

    def __str__(self):
        return self.message
