from django import forms
from django.utils.translation import gettext_lazy as _

from orders.choices import SplitChoice
from risks.choices import EscalationCategory, EscalationStatus

_area = forms.Textarea(attrs={"rows": 2})


class AcknowledgeForm(forms.Form):
    note = forms.CharField(label=_("Note"), required=False, max_length=2000, widget=_area)


class ResolveForm(forms.Form):
    note = forms.CharField(label=_("How it was resolved"), max_length=2000, widget=_area)


class EscalateForm(forms.Form):
    reason = forms.CharField(label=_("Why the platform is needed"), max_length=2000, widget=_area)
    category = forms.ChoiceField(
        label=_("Category"), choices=EscalationCategory.choices, initial=EscalationCategory.OTHER, required=False
    )


class SplitChoiceForm(forms.Form):
    # The radios are drawn by hand on the case page; the message names the two options.
    choice = forms.ChoiceField(
        label=_("Your choice"),
        choices=SplitChoice.choices,
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose A or B."), "invalid_choice": _("Choose A or B.")},
    )


class CommentForm(forms.Form):
    body = forms.CharField(label=_("Comment"), max_length=4000, widget=forms.Textarea(attrs={"rows": 3}))
    internal = forms.BooleanField(label=_("Internal note: only the platform sees it"), required=False, initial=False)

    def __init__(self, *args, internal_allowed=False, **kwargs):
        super().__init__(*args, **kwargs)
        if not internal_allowed:
            del self.fields["internal"]


class CloseForm(forms.Form):
    status = forms.ChoiceField(
        label=_("How it ends"),
        choices=[(EscalationStatus.RESOLVED, _("Resolved")), (EscalationStatus.REJECTED, _("Rejected"))],
        widget=forms.RadioSelect,
        initial=EscalationStatus.RESOLVED,
    )
    note = forms.CharField(label=_("Note to the organisation that raised it"), max_length=4000, widget=_area)


# The viewer themself, among the people an escalation may be given to.
ME = "me"


class AssignForm(forms.Form):
    """Whom to give an escalation (or the ticked escalations) to: oneself, or
    an operator of the platform named in ``operators``."""

    assignee = forms.ChoiceField(label=_("Assign to"), initial=ME)

    def __init__(self, *args, operators=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.operators = {str(person.pk): person for person in operators}
        self.fields["assignee"].choices = [
            (ME, _("Me")),
            *((pk, person.get_username()) for pk, person in self.operators.items()),
        ]

    def chosen(self, me):
        """The person chosen (``me`` for oneself)."""
        value = self.cleaned_data["assignee"]
        return me if value == ME else self.operators[value]
