"""Room on Python's frame stack for a request or a task, so that its loops
run at the same speed whatever depth they are called at.

CPython 3.11 keeps the frames of Python functions on a stack made of chunks
of 16 KB. A call that does not fit in the current chunk gets a new one
(``mmap``), and the chunk is given back (``munmap``) as soon as that call
returns. A loop whose calls happen to straddle a chunk's end therefore maps
and unmaps memory on every call: the same code runs two to three times
slower at one depth than at the next (CPython issue gh-142183, "Calls across
stack chunks perform badly"; from 3.13 the interpreter keeps one chunk
aside instead). Measured here: the 50 rows of a worklist page took 84 ms to
render at the depth the page's template reaches them, 22 ms at the depth of
the live refresh's, the same rows and code.

``with_room(fn, *args)`` calls ``fn`` from a frame that reserves ``ROOM``
stack slots: the interpreter puts that frame at the start of a chunk of its
own, large enough for the reservation and the ``ROOM`` slots after it, and
everything ``fn`` calls runs inside that one chunk, which stays until ``fn``
returns. The reservation is address space the frame never writes to; the
chunk is mapped once a call (a few microseconds) and only the pages the calls
use are ever touched. ``RoomyStackMiddleware`` does it for every request.
(The risk sweep, measured the same way, ran no faster: its time is in the
database.)
"""

from types import FunctionType

# Stack slots (8 bytes each) reserved by the calling frame: its chunk is
# then 512 KB, leaving about 240 KB for the calls inside, some thousand
# frames of a request, more than the recursion limit lets a request use.
ROOM = 32 * 1024


def _call(fn, /, *args, **kwargs):
    return fn(*args, **kwargs)


# ``_call`` with a frame ``ROOM`` slots larger: the same code, told it needs
# a deeper evaluation stack than it does (``CodeType.replace``).
with_room = FunctionType(
    _call.__code__.replace(co_stacksize=_call.__code__.co_stacksize + ROOM),
    _call.__globals__,
    "with_room",
)
with_room.__doc__ = "``fn(*args, **kwargs)``, called in a stack chunk of its own (see the module)."


class RoomyStackMiddleware:
    """Runs the rest of the request in a stack chunk of its own (``with_room``).
    First in ``MIDDLEWARE``, so the whole request, views and templates, runs
    at a depth no chunk boundary is near."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return with_room(self.get_response, request)
