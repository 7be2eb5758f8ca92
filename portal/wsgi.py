"""The WSGI application the web processes serve.

What a worker loads at start (Django, the apps, the URLs and the views they
import) lives as long as the worker. ``gc.freeze()`` puts it out of the
cyclic garbage collector's reach: otherwise every full collection walks
those 150,000 objects again (about 90 ms on the reference machine), a pause
that falls on whichever request is running, one carrier batch in ten. The
URLs are loaded here, not by the first request, so that their views are
among what is frozen.
"""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
application = get_wsgi_application()
get_resolver().url_patterns  # noqa: B018  (loads the URL modules and their views)
gc.freeze()
