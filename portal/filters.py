import django_filters
import django_filters.fields


class StyledFilterSet(django_filters.FilterSet):
    """A filter set whose form fields carry Bootstrap's small form classes."""

    @property
    def form(self):
        form = super().form
        for field in form.fields.values():
            css = "form-select form-select-sm" if hasattr(field.widget, "choices") else "form-control form-control-sm"
            field.widget.attrs.setdefault("class", css)
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
