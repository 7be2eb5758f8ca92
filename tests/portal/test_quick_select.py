"""The filter forms' selects, written in Python, are what Django's templates
write, byte for byte."""

import pytest
from django import forms
from django.utils.safestring import mark_safe

from portal.filters import QuickSelect, QuickSelectMultiple

CHOICES = [
    ("", "---------"),
    ("M-1", "Merchant <One> & Co"),
    ("M-2", mark_safe("<b>safe</b>")),
    (3, "number"),
    ("Group & more", [("g1", "In a group"), ("g2", "Also “quoted”")]),
]


@pytest.mark.parametrize(
    ("stock", "quick", "value"),
    [
        (forms.Select, QuickSelect, None),
        (forms.Select, QuickSelect, "M-1"),
        (forms.Select, QuickSelect, "g2"),
        (forms.Select, QuickSelect, 3),
        (forms.SelectMultiple, QuickSelectMultiple, ["M-2", "g1"]),
        (forms.SelectMultiple, QuickSelectMultiple, []),
    ],
)
@pytest.mark.parametrize(
    "attrs", [{}, {"class": "form-select form-select-sm", "required": True, "disabled": False, "data-x": 'a"b'}]
)
def test_a_quick_select_writes_what_djangos_templates_write(stock, quick, value, attrs):
    expected = stock(attrs=dict(attrs), choices=CHOICES).render("merchant", value, attrs={"id": "id_merchant"})
    written = quick(attrs=dict(attrs), choices=CHOICES).render("merchant", value, attrs={"id": "id_merchant"})
    assert written == expected
    assert "<option" in written


def test_the_list_filters_use_quick_selects(client, personas):
    from orders.filtersets import OrderFilterSet
    from orders.models import Order

    user = personas["operator"]
    form = OrderFilterSet({}, Order.objects.all(), organisation=user.organisation, web=True).form
    kinds = {type(field.widget) for field in form.fields.values() if hasattr(field.widget, "choices")}
    assert kinds <= {QuickSelect, QuickSelectMultiple}, kinds
