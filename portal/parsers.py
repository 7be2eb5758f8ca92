"""The API's JSON bodies: parsed with limits on size, depth and encoding, so
that no body a client sends reaches a view (or fails in one) as a server error."""

import codecs
import json

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework import exceptions
from rest_framework.parsers import JSONParser

# No body the API takes nests deeper than a few levels; a deeper one is an
# attack on the recursion of whatever walks it next (validation, logging,
# fingerprinting), so it is refused as soon as it is read.
MAX_JSON_DEPTH = 32
_DEFAULT_MAX_BODY = 2_621_440  # Django's own default for DATA_UPLOAD_MAX_MEMORY_SIZE


def max_body_bytes() -> int:
    """The largest body the API reads, from Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``."""
    return settings.DATA_UPLOAD_MAX_MEMORY_SIZE or _DEFAULT_MAX_BODY


def _too_deep(data, limit: int) -> bool:
    # A loop over a stack, not recursion: the point is to survive any depth.
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def parse_json(raw: bytes | str):
    """``raw`` parsed as JSON, or ``ParseError`` (400 ``malformed_request``) if it
    is not JSON, not UTF-8, too large or nested deeper than ``MAX_JSON_DEPTH``."""
    if len(raw) > max_body_bytes():
        raise exceptions.ParseError(_("The body is larger than %(max)s bytes.") % {"max": max_body_bytes()})
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise exceptions.ParseError(_("The body is not valid JSON.")) from None
    if _too_deep(data, MAX_JSON_DEPTH):
        raise exceptions.ParseError(_("The body nests deeper than %(max)s levels.") % {"max": MAX_JSON_DEPTH})
    return data


def _refuse_constant(name):
    # NaN and Infinity are not JSON, and no field of ours could hold them.
    raise ValueError(name)


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser with the limits of ``parse_json``: size, depth and encoding."""

    def parse(self, stream, media_type=None, parser_context=None):
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise exceptions.ParseError(_("The body's charset is not one we know.")) from None
        if stream is None:
            return None
        raw = stream.read(max_body_bytes() + 1)
        if len(raw) > max_body_bytes():
            raise exceptions.ParseError(_("The body is larger than %(max)s bytes.") % {"max": max_body_bytes()})
        if isinstance(raw, bytes):
            try:
                raw = raw.decode(encoding)
            except (UnicodeDecodeError, LookupError):
                raise exceptions.ParseError(_("The body is not valid JSON.")) from None
        return parse_json(raw)
