from django import forms
from django.utils.translation import gettext_lazy as _

from orders.choices import SplitChoice
from risks.choices import EscalationCategory

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
    choice = forms.ChoiceField(label=_("Your choice"), choices=SplitChoice.choices, widget=forms.RadioSelect)
