import sys

import pytest
from django.conf import settings
from django.urls import reverse

from portal.stack import ROOM, RoomyStackMiddleware, with_room


def test_a_call_with_room_is_the_call_itself():
    assert with_room(divmod, 17, 5) == (3, 2)
    assert with_room(dict, a=1, fn=2) == {"a": 1, "fn": 2}
    with pytest.raises(ZeroDivisionError):
        with_room(divmod, 1, 0)


def test_the_calling_frame_reserves_the_room():
    """The reservation is what puts the call in a chunk of its own: a frame
    of ``ROOM`` slots more than the call needs."""
    assert with_room.__code__.co_stacksize >= ROOM
    assert with_room.__name__ == "with_room"


def test_calls_deeper_than_the_room_still_work():
    """Past the room, the interpreter takes further chunks as it always does."""

    def down(n):
        return 0 if n == 0 else 1 + down(n - 1)

    depth = sys.getrecursionlimit() - 100
    assert with_room(down, depth) == depth


def test_every_request_runs_with_room(client):
    assert settings.MIDDLEWARE[0] == "portal.stack.RoomyStackMiddleware"
    seen = []

    def view(request):
        seen.append(request)
        return "answer"

    assert RoomyStackMiddleware(view)("request") == "answer"
    assert seen == ["request"]
    # And a whole request through the stack answers as before.
    assert client.get(reverse("login")).status_code == 200
