import django_filters
import django_filters.fields
from django import forms
from django.utils.html import format_html
from django.utils.safestring import mark_safe


def _attrs(attrs) -> str:
    # As django/forms/widgets/attrs.html writes them.
    return mark_safe(
        "".join(
            format_html(" {}", name) if value is True else format_html(' {}="{}"', name, str(value))
            for name, value in attrs.items()
            if value is not False
        )
    )


class _QuickSelect:
    """A select written in Python, byte for byte as Django's templates write
    it (``django/forms/widgets/select.html``, ``select_option.html``): the
    template engine renders each option on its own, which made a list page's
    filter form (forty merchants, fourteen states) cost more than its table."""

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        out = [format_html('<select name="{}"{}>', widget["name"], _attrs(widget["attrs"]))]
        for group_name, options, _index in widget["optgroups"]:
            if group_name:
                out.append(format_html('\n  <optgroup label="{}">', group_name))
            for option in options:
                out.append(
                    format_html(
                        '\n  <option value="{}"{}>{}</option>\n',
                        str(option["value"]),
                        _attrs(option["attrs"]),
                        option["label"],
                    )
                )
            if group_name:
                out.append("\n  </optgroup>")
        out.append("\n</select>")
        return mark_safe("".join(out))


class QuickSelect(_QuickSelect, forms.Select):
    pass


class QuickSelectMultiple(_QuickSelect, forms.SelectMultiple):
    pass


_QUICK = {forms.Select: QuickSelect, forms.SelectMultiple: QuickSelectMultiple}


class StyledFilterSet(django_filters.FilterSet):
    """A filter set whose form fields carry Bootstrap's small form classes,
    its selects written in Python (``QuickSelect``)."""

    @property
    def form(self):
        form = super().form
        for field in form.fields.values():
            css = "form-select form-select-sm" if hasattr(field.widget, "choices") else "form-control form-control-sm"
            field.widget.attrs.setdefault("class", css)
            quick = _QUICK.get(type(field.widget))
            if quick is not None:
                field.widget.__class__ = quick
        return form


class _ListedChoices(django_filters.fields.ModelChoiceIterator):
    """A choice field's options read in one plain query. Django streams them
    through a server-side cursor on PostgreSQL (DECLARE … WITH HOLD, FETCH,
    CLOSE, the rows kept past the transaction), which suits millions of rows,
    not the few organisations a filter offers."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        if self.field.null_label is not None:
            yield (self.field.null_value, self.field.null_label)
        for obj in self.queryset.all():
            yield self.choice(obj)


class _ListedModelChoiceField(django_filters.fields.ModelChoiceField):
    iterator = _ListedChoices


class ModelChoiceFilter(django_filters.ModelChoiceFilter):
    """django-filter's, its options read in one plain query (``_ListedChoices``)."""

    field_class = _ListedModelChoiceField
