"""What a notification says: the context its templates (emails and the inbox) render."""

from decimal import Decimal

from django.conf import settings
from django.urls import reverse
from django.utils.dateparse import parse_datetime


def context_for(notification) -> dict:
    """The template context of ``notification``; render it inside the reader's language."""
    data = dict(notification.context)
    for name in ("due", "deadline", "at"):
        if isinstance(data.get(name), str):
            data[name] = parse_datetime(data[name])
    if isinstance(data.get("money"), str):
        data["money"] = Decimal(data["money"])
    return {
        "n": notification,
        "c": data,
        "recipient": notification.recipient,
        "link": f"{settings.SITE_URL}{notification.link}" if notification.link else settings.SITE_URL,
        "site": settings.SITE_URL,
        "settings_link": f"{settings.SITE_URL}{reverse('notification-preferences')}",
    }
