"""One form per action a person takes on an order. Each carries the version
the person saw, so a change in between is a conflict, not a surprise.

A form's fields are its action's parameters as ``orders.inputs`` declares
them; a form says only how it asks for them (labels, widgets, help)."""

from django import forms
from django.utils.translation import gettext_lazy as _

from orders import inputs
from orders.choices import Action, AppraisalResult
from orders.inputs import MAX_EXTENSION_HOURS


def _field(param, label, widget=None):
    """The form field asking for ``param``."""
    if param.kind == inputs.CHOICE:
        return forms.ChoiceField(label=label, required=param.required, choices=param.choices.choices, widget=widget)
    if param.kind == inputs.HOURS:
        return forms.IntegerField(label=label, required=param.required, min_value=1, max_value=MAX_EXTENSION_HOURS)
    if param.kind == inputs.TEXT:
        widget = widget or forms.Textarea(attrs={"rows": 2})
    return forms.CharField(label=label, required=param.required, max_length=param.max_length, widget=widget)


class ActionForm(forms.Form):
    action: str = ""
    button = "btn-primary"
    help_text = ""
    # Whether the page also asks for the optional parameters (a note); most
    # steps are taken with a click, and integrations may still send a note.
    asks_optional = False
    # How this form asks for a parameter, where not by its own label and usual widget.
    labels: dict = {}
    widgets: dict = {}
    version = forms.IntegerField(widget=forms.HiddenInput, min_value=1)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for param in inputs.params_of(self.action):
            if param.required or self.asks_optional:
                label = self.labels.get(param.name, param.label)
                self.fields[param.name] = _field(param, label, self.widgets.get(param.name))

    def params(self) -> dict:
        """The cleaned input as workflow parameters (blank optional fields left out)."""
        return {k: v for k, v in self.cleaned_data.items() if k != "version" and v not in ("", None)}


class ShipForm(ActionForm):
    action = Action.SHIP
    help_text = _("The parcel you sent to the appraisal provider.")


class VerifyPendingForm(ActionForm):
    action = Action.VERIFY_PENDING
    help_text = _(
        "Find out why this parcel has not been signed for (ask the merchant if needed) and record it. "
        "“Cannot determine” and “System refuses sign-in” go to the platform at once."
    )
    asks_optional = True
    widgets = {"outcome": forms.RadioSelect}


class SignInForm(ActionForm):
    action = Action.SIGN_IN


class AppraiseForm(ActionForm):
    action = Action.APPRAISE
    help_text = _(
        "Only one order of a split group may be appraised pass or fail: the merchant pays one appraisal fee per "
        "item. Choose “No appraisal needed” for the others."
    )
    widgets = {"result": forms.RadioSelect}


class InspectForm(ActionForm):
    action = Action.INSPECT


class PackForm(ActionForm):
    action = Action.PACK


class PrintWaybillForm(ActionForm):
    action = Action.PRINT_WAYBILL
    help_text = _("Prints the online waybill. Only a courier pickup of this waybill ships the order.")


class ReportBlockedForm(ActionForm):
    action = Action.REPORT_BLOCKED
    button = "btn-outline-danger"
    help_text = _(
        "Use this when you cannot enter, inspect or pack the order in the online flow. The platform is told at "
        "once and an operator will fix and unblock it. Shipping it offline is forbidden: the order would be "
        "refunded automatically at its deadline and the merchant would lose the money."
    )
    labels = {"reason": _("What happens")}


class SignInOnBehalfForm(ActionForm):
    action = Action.SIGN_IN_ON_BEHALF
    help_text = _("For when the provider's system refuses to sign the parcel in.")
    labels = {"note": _("Why")}


class UnblockForm(ActionForm):
    action = Action.UNBLOCK
    asks_optional = True


class ExtendDeadlineForm(ActionForm):
    action = Action.EXTEND_DEADLINE
    button = "btn-outline-primary"
    asks_optional = True


class ConfirmForm(ActionForm):
    action = Action.CONFIRM


class RefundForm(ActionForm):
    action = Action.REFUND
    button = "btn-outline-danger"


FORMS = {
    form.action: form
    for form in (
        ShipForm,
        VerifyPendingForm,
        SignInForm,
        AppraiseForm,
        InspectForm,
        PackForm,
        PrintWaybillForm,
        ReportBlockedForm,
        SignInOnBehalfForm,
        UnblockForm,
        ExtendDeadlineForm,
        ConfirmForm,
        RefundForm,
    )
}


def slug(action) -> str:
    """The action as it appears in URLs: ``print_waybill`` → ``print-waybill``."""
    return str(action).replace("_", "-")


BY_SLUG = {slug(action): action for action in FORMS}


class ScanForm(forms.Form):
    """One scan at a station: the number a scanner typed, and at the appraisal
    station the result the person chose for the parcels they scan."""

    code = forms.CharField(label=_("Scan or type a number"), max_length=200, strip=True)
    result = forms.ChoiceField(
        label=_("Result for the next scans"),
        choices=AppraisalResult.choices,
        required=False,
        widget=forms.RadioSelect(attrs={"class": "form-check-input"}),
    )

    def __init__(self, *args, action=None, **kwargs):
        super().__init__(*args, **kwargs)
        if action != Action.APPRAISE:
            del self.fields["result"]

    def params(self) -> dict:
        return {"result": self.cleaned_data["result"]} if self.cleaned_data.get("result") else {}
