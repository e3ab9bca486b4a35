"""The WSGI application that gunicorn serves."""
import os

from django.core.wsgi import get_wsgi_application

from config import observability

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Before the application is built: Django's tracing is a middleware (docs/observability.md).
observability.instrument_django()
application = get_wsgi_application()
