"""Each action's parameters are declared once, in ``orders.inputs``: the order
page's form, the API's body and the workflow's check take the same names, the
same required ones, the same kinds, lengths and choices."""

import pytest
from django import forms
from drf_spectacular.generators import SchemaGenerator
from rest_framework import serializers

from orders import errors, inputs
from orders.api import serializers as s
from orders.api.views import OrderViewSet
from orders.choices import EVENT_PARAMETERS, Action
from orders.forms import FORMS, slug

STEPS = sorted(step.__name__ for step in OrderViewSet.get_extra_actions())


def shape_of_form_field(field):
    if isinstance(field, forms.ChoiceField):
        return ("choice", field.required, [value for value, _ in field.choices])
    if isinstance(field, forms.IntegerField):
        return ("whole", field.required, (field.min_value, field.max_value))
    assert isinstance(field, forms.CharField), field
    return ("text", field.required, field.max_length)


def shape_of_body_field(field):
    if isinstance(field, serializers.ChoiceField):
        return ("choice", field.required, list(field.choices))
    if isinstance(field, serializers.IntegerField):
        return ("whole", field.required, (field.min_value, field.max_value))
    assert isinstance(field, serializers.CharField), field
    assert field.allow_blank is not field.required, field
    return ("text", field.required, field.max_length)


def shape_of_param(param):
    if param.kind == inputs.CHOICE:
        return ("choice", param.required, list(param.choices.values))
    if param.kind == inputs.HOURS:
        return ("whole", param.required, (1, inputs.MAX_EXTENSION_HOURS))
    return ("text", param.required, param.max_length)


def test_the_web_and_the_api_offer_the_same_actions():
    assert sorted(str(action) for action in FORMS) == STEPS


@pytest.mark.parametrize("action", sorted(FORMS))
def test_a_form_asks_for_its_actions_parameters(action):
    form = FORMS[action]()
    asked = {name: shape_of_form_field(field) for name, field in form.fields.items() if name != "version"}
    declared = {
        param.name: shape_of_param(param) for param in inputs.params_of(action) if param.required or form.asks_optional
    }
    assert asked == declared
    for param in inputs.params_of(action):
        if param.name in form.fields and param.name not in form.labels:
            assert form.fields[param.name].label == param.label


@pytest.mark.parametrize("action", STEPS)
def test_an_api_body_takes_exactly_its_actions_parameters(action):
    body = s.body_of(action)()
    taken = {name: shape_of_body_field(field) for name, field in body.fields.items()}
    assert taken == {param.name: shape_of_param(param) for param in inputs.params_of(action)}


@pytest.fixture(scope="module")
def schema():
    return SchemaGenerator().get_schema(request=None, public=True)


@pytest.mark.parametrize("action", STEPS)
def test_an_api_step_is_routed_and_documented_under_its_action(schema, action):
    step = getattr(OrderViewSet, action)
    assert step.url_path == slug(action) and step.mapping == {"post": action}
    operation = schema["paths"][f"/api/v1/orders/{{order_no}}/{slug(action)}/"]["post"]
    assert operation["operationId"] == f"orders_{action}"
    body = s.body_of(action).__name__.removesuffix("Serializer")
    assert operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(f"/{body}Request")


def test_every_parameter_has_its_words_and_a_choice_its_choices():
    for action in [*Action, "unknown"]:
        for param in inputs.params_of(action):
            label, choices = EVENT_PARAMETERS[param.name]
            assert label and (param.kind == inputs.CHOICE) == (choices is not None), param


@pytest.mark.parametrize("action", list(Action))
def test_the_workflow_refuses_a_parameter_the_action_does_not_declare(action):
    with pytest.raises(errors.InvalidInput) as refused:
        inputs.clean_params(action, {"not_a_parameter": "x"})
    assert refused.value.field == "not_a_parameter"
