"""The portal's template filters and tags; each is a function of ``portal.formatting``."""

from django import template

from portal import formatting

register = template.Library()

register.filter("money", formatting.money)
register.filter("duration", formatting.duration)
register.filter("countdown", formatting.countdown)
register.filter("choice_label", formatting.choice_label)
register.filter("event_parameters", formatting.event_parameters)
register.filter("translated", formatting.translated)
register.filter("forecast_against_deadline", formatting.forecast_against_deadline)
register.filter("forecast_basis", formatting.forecast_basis)
register.simple_tag(formatting.countdown_labels, name="countdown_labels")
register.simple_tag(formatting.deadline_css, name="deadline_css")
