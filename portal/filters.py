import django_filters


class StyledFilterSet(django_filters.FilterSet):
    """A filter set whose form fields carry Bootstrap's small form classes."""

    @property
    def form(self):
        form = super().form
        for field in form.fields.values():
            css = "form-select form-select-sm" if hasattr(field.widget, "choices") else "form-control form-control-sm"
            field.widget.attrs.setdefault("class", css)
        return form
