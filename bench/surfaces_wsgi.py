"""The portal's WSGI application (``portal.wsgi``) with the benchmarks' floor
views served beside its URLs (``surfaces.install_floor_views``), for the
gunicorn that ``bench/actions.py`` starts (which has collected the static
files already)."""

from surfaces import install_floor_views

from portal.wsgi import application  # noqa: F401  (what gunicorn serves)

install_floor_views()
