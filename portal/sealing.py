"""Secrets the portal must use again but nobody should read back: sealed at
rest with a key derived from ``SECRET_KEY``.

A carrier's signing secret has to verify HMACs, so it cannot be a one-way
hash like a password or an API key. It is encrypted instead (Fernet:
AES-128-CBC with an HMAC-SHA256 tag), so a database dump or the admin shows
only a token. ``SECRET_KEY_FALLBACKS`` still open tokens sealed under an
earlier key, so rotating the key does not lock the carriers out; a value
saved again is sealed under the current key.
"""

import base64
import hashlib
import logging

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

logger = logging.getLogger(__name__)
PURPOSE = b"portal.sealing:v1:"


def _fernet_for(secret_key: str) -> Fernet:
    # A Fernet key is 32 bytes, url-safe base64; derive it so that this use of
    # SECRET_KEY cannot collide with Django's own signing.
    digest = hashlib.sha256(PURPOSE + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _keys() -> MultiFernet:
    keys = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([_fernet_for(key) for key in keys])


def seal(plain: str) -> str:
    """The token stored for ``plain``."""
    return _keys().encrypt(plain.encode()).decode("ascii")


def unseal(token: str) -> str | None:
    """The plain value of ``token``; ``None`` when no current or fallback key opens it."""
    try:
        return _keys().decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeError, ValueError):
        return None


def is_sealed(value: str) -> bool:
    """Whether ``value`` is a token this module made (used when converting old plain values)."""
    return unseal(value) is not None


class SealedTextField(models.TextField):
    """Plain text in Python, a Fernet token in the database.

    A token that no key opens (``SECRET_KEY`` changed without a fallback)
    reads as ``None``, and is logged, so the secret simply stops working
    instead of being used wrongly.
    """

    def from_db_value(self, value, expression, connection):
        if value is None or value == "":
            return value
        plain = unseal(value)
        if plain is None:
            logger.error("a sealed %s could not be opened with SECRET_KEY or its fallbacks", self.name)
        return plain

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value is None or value == "":
            return value
        return seal(value)
