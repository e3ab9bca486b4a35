"""Django settings. Every value that differs between environments comes from config/env.py."""

import importlib.util
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

from django.utils.csp import CSP

from config import env, logs, observability

try:
    ENV = env.load(os.environ)
except env.InvalidEnvironment as problems:
    sys.exit(str(problems))  # one message naming every problem, exit status 1, no traceback

BASE_DIR = Path(__file__).resolve().parent.parent

# Error reports and traces, each off (its library not imported) unless its variable is set.
observability.start(ENV)

DEBUG = ENV["DEBUG"]
SECRET_KEY = ENV["SECRET_KEY"]
ALLOWED_HOSTS = ENV["ALLOWED_HOSTS"]

INSTALLED_APPS = [
    # First, so that its templates (sign-in, password pages) take precedence over the admin's.
    "{{ cookiecutter.project_slug }}",
    "{{ cookiecutter.project_slug }}.notes",  # the example app: delete it with its folder
{%- if cookiecutter.ipfs == "yes" %}
    "{{ cookiecutter.project_slug }}.uploads",
{%- endif %}
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",  # sign-in throttling: below
{%- if cookiecutter.tasks == "yes" %}
    "django_tasks_db",  # background tasks: below
    "{{ cookiecutter.project_slug }}.worker",
{%- endif %}
]

MIDDLEWARE = [
    # First: the request's ID for everything below, and one log line per request with its time.
    "config.logs.RequestLogMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Serves collected static files from the app server itself, compressed and cacheable,
    # so the production stack needs no separate file server or shared volume.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    # Last, as django-axes asks: answers a locked-out sign-in with its page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",  # csp_nonce, for SECURE_CSP's NONCE
            ],
        },
    },
]

DATABASES = {"default": ENV["DATABASE_URL"]}

AUTH_USER_MODEL = "{{ cookiecutter.project_slug }}.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"django.contrib.auth.password_validation.{name}"}
    for name in (
        "UserAttributeSimilarityValidator",
        "MinimumLengthValidator",
        "CommonPasswordValidator",
        "NumericPasswordValidator",
    )
]

# Site users sign in with Django's own views (config/urls.py: accounts/).
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

# Sign-in throttling (django-axes; docs/pages.md#limits), on the site's sign-in and the admin's alike:
# after LOGIN_FAILURE_LIMIT failures for one account, or from one client address, within
# LOGIN_LOCKOUT_MINUTES, both are refused (429, with a page that says until when) until that
# long after the last counted failure. Refused attempts are not counted, so the lock ends by
# itself however long the guessing goes on, and they cost no password hashing. Counted in the
# database: one count for every worker and every container.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses before any password is hashed
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = ENV["LOGIN_FAILURE_LIMIT"]
AXES_COOLOFF_TIME = timedelta(minutes=ENV["LOGIN_LOCKOUT_MINUTES"])
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
# The client's real address behind Caddy, not whatever X-Forwarded-For a client sends.
AXES_CLIENT_IP_CALLABLE = "config.limits.client_address"
AXES_DISABLE_ACCESS_LOG = True  # failures only: no table of every sign-in
AXES_VERBOSE = False  # no banner on stdout at every start (manage.py's output is read by scripts)
PASSWORD_RESET_LIMIT = ENV["PASSWORD_RESET_LIMIT"]

# Mail (password resets): printed in development, an SMTP server in production (EMAIL_URL).
{%- if cookiecutter.tasks == "yes" %}
# Pages hand their mail to the worker (a task, retried if the server fails: docs/tasks.md#mail),
# which sends it through "direct", the mailer EMAIL_URL names.
MAILERS = {
    "default": {"BACKEND": "{{ cookiecutter.project_slug }}.worker.mail.QueuedMailBackend",
                "OPTIONS": {"mailer": "direct"}},
    "direct": ENV["EMAIL_URL"],
}
{%- else %}
MAILERS = {"default": ENV["EMAIL_URL"]}
{%- endif %}
DEFAULT_FROM_EMAIL = SERVER_EMAIL = ENV["DEFAULT_FROM_EMAIL"]

{% if cookiecutter.tasks == "yes" -%}
# Background tasks (docs/tasks.md): Django's tasks framework, queued in PostgreSQL and run by
# `python manage.py worker`. django-tasks-db 0.13 declares Django up to 6.0: its backend, worker
# and admin run on 6.1 as they are, as {{ cookiecutter.project_slug }}/worker/tests.py checks.
TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
TASKS_KEEP_DAYS = ENV["TASKS_KEEP_DAYS"]
TASKS_MAX_RUNTIME = ENV["TASKS_MAX_RUNTIME"]

{% endif -%}
LANGUAGE_CODE = "en-us"
TIME_ZONE = ENV["TIME_ZONE"]
USE_I18N = True
USE_TZ = True

# Request bodies (docs/pages.md#limits): 1 MiB at most, but on a view that sets its own `body_limit`,
# as Caddy's request_body says; config/limits.py's handler stops reading a multipart body past
# its view's limit before any file in it is kept.
DATA_UPLOAD_MAX_MEMORY_SIZE = 1024 * 1024
FILE_UPLOAD_HANDLERS = [
    "config.limits.BoundedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"  # filled by `collectstatic` when the image is built
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    # At collectstatic (in the image build): names with a hash of the content, which WhiteNoise
    # serves as cacheable for ever (immutable), and brotli and gzip copies, so nothing is
    # compressed per request (config/static.py: and nothing twice at build). Pages need the
    # manifest it writes; tests swap in plain names.
    "staticfiles": {"BACKEND": "config.static.CompressedManifestStorage"},
{%- if cookiecutter.ipfs == "yes" %}
    # Uploads kept on the project's Kubo node, named by their content's CID (docs/ipfs.md).
    # A node slower than `timeout` seconds fails the upload, cleanly.
    "ipfs": {"BACKEND": "{{ cookiecutter.project_slug }}.uploads.storage.KuboStorage",
             "OPTIONS": {"api_url": ENV["IPFS_API_URL"], "gateway_url": ENV["IPFS_GATEWAY_URL"],
                         "auth": ENV["IPFS_API_AUTH"] or None, "timeout": 30}},
{%- endif %}
}
# Only the hashed copies: pages name nothing else, and it halves the image's static files and
# the compression time of every build.
WHITENOISE_KEEP_ONLY_HASHED_FILES = True

# HTTPS everywhere but on the developer's machine. TLS ends at the reverse proxy, which
# tells Django the original scheme in X-Forwarded-Proto; the probes stay plain HTTP so a
# container's own health check needs no certificate.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = not DEBUG
SECURE_REDIRECT_EXEMPT = [r"^healthz", r"^readyz$"]  # healthz and an app's healthz/<its check>
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = 0 if DEBUG else ENV["SECURE_HSTS_SECONDS"]
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
# Asking to be preloaded into browsers is opt-in: leaving the list takes months.
SECURE_HSTS_PRELOAD = ENV["SECURE_HSTS_PRELOAD"]
if not SECURE_HSTS_PRELOAD:
    SILENCED_SYSTEM_CHECKS = ["security.W021"]  # check --deploy's advice to preload
# Content-Security-Policy: scripts, styles, images and fonts from this site only; no inline
# script or style but those that carry the request's nonce (templates have it as csp_nonce;
# the debug toolbar uses it); no plugins, no framing.
# SecurityMiddleware's defaults add Referrer-Policy: same-origin and X-Content-Type-Options.
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF, CSP.NONCE],
    "style-src": [CSP.SELF, CSP.NONCE],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.NONE],
    "form-action": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
}

# One line per record on stdout (docs/observability.md#logs): JSON in production, readable text in
# development (LOG_FORMAT), each with its request's ID (config/logs.py). Django's lines once:
# not also on stderr through its default handlers (runserver's request lines keep theirs).
LOGGING = logs.logging_config(ENV["LOG_FORMAT"], DEBUG, ENV["LOG_LEVEL"],
                              loggers={"django": {"handlers": [], "propagate": True}})
logging.captureWarnings(True)  # Python's warnings as log lines too (py.warnings), not bare text

# django-debug-toolbar, in development only: it is in the dev dependency group, so the
# production image has not even the package. Its panels are at /__debug__/ (config/urls.py).
if DEBUG and importlib.util.find_spec("debug_toolbar"):
    INSTALLED_APPS.append("debug_toolbar")
    MIDDLEWARE.insert(0, "debug_toolbar.middleware.DebugToolbarMiddleware")
    # Collapsed to a tab at the edge until you open it.
    DEBUG_TOOLBAR_CONFIG = {"SHOW_TOOLBAR_CALLBACK": f"{__name__}.show_debug_toolbar",
                            "SHOW_COLLAPSED": True}


def show_debug_toolbar(request):
    """While DEBUG is on, for any client: the dev server is reachable from this machine only
    (compose publishes it on 127.0.0.1), and in Docker requests come from the network's
    gateway, not from 127.0.0.1. Read per request, since tests turn DEBUG off."""
    from django.conf import settings

    return settings.DEBUG
