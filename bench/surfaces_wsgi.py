"""The portal's WSGI application (``portal.wsgi``) with the benchmarks' floor
views served beside its URLs (``surfaces.install_floor_views``), for the
gunicorn that ``bench/actions.py`` starts."""

from surfaces import install_floor_views, plain_static_files

from portal.wsgi import application  # noqa: F401  (what gunicorn serves)

plain_static_files()
install_floor_views()
