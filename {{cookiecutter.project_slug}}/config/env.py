"""The environment variables Django reads: declare a setting here, once, then read it in
settings.py as ENV["NAME"]. Each names its type (config/envschema.py), its default (as written in
.env), whether production requires it, and one line of help; `load()` checks them all at start
and reports every problem at once. `.env.example` is rendered from these declarations (and
compose's own variables) by `python -m config.env_example --write`.
"""

from config import envschema
from config.envschema import (
    BOOLEAN, COUNT, DATABASE_URL, EMAIL_ADDRESS, EMAIL_URL, FRACTION, HOST_LIST, INTEGER,
    LOG_FORMAT, NOT_CONSOLE_MAIL, NOT_EMPTY, ONE_LINE, OPTIONAL_HTTP_URL, PLACEHOLDER,
    SECRET_KEY_MIN_LENGTH, SENTRY_DSN, STRONG_SECRET_KEY, TEXT, TIME_ZONE, Variable, choice,
{%- if cookiecutter.ipfs == "yes" %}
    HEADER_VALUE, HTTP_URL, URL_OR_PATH,
{%- endif %}
)

VARIABLES = (
    Variable(
        "DEBUG", BOOLEAN, default="false",
        help="Django's debug mode: detailed error pages, relaxed security. Never on in production.",
    ),
    Variable(
        "SECRET_KEY", TEXT, default="django-insecure-development-only",
        required_in_production=True, production_schema=STRONG_SECRET_KEY,
        example=PLACEHOLDER, secret=True,
        help=f"Signs sessions and tokens. In production: secret, random, "
             f"≥ {SECRET_KEY_MIN_LENGTH} characters.",
    ),
    Variable(
        "ALLOWED_HOSTS", HOST_LIST, default="localhost,127.0.0.1,[::1]",
        required_in_production=True, production_schema=NOT_EMPTY,
        example="{{ cookiecutter.domain_name }}",
        help="Host names this site answers to.",
    ),
    Variable(
        "POSTGRES_PASSWORD", ONE_LINE, default="", example=PLACEHOLDER, secret=True,
        help="Password of the database superuser the compose stacks create (when their volume "
             "is new; compose requires it): development's app, and production's backups and "
             "restores connect with it.",
    ),
    Variable(
        "DATABASE_URL", DATABASE_URL, required_in_production=True, secret=True, example="",
        default="postgres://{{ cookiecutter.project_slug }}:${POSTGRES_PASSWORD}"
                "@localhost:5432/{{ cookiecutter.project_slug }}",
        help="The PostgreSQL database. The default is development's, on this machine, with "
             "POSTGRES_PASSWORD: written once, in .env. The compose files set their own.",
    ),
    Variable(
        "TIME_ZONE", TIME_ZONE, default="{{ cookiecutter.timezone }}",
        help="Time zone for display and forms; datetimes are stored in UTC.",
    ),
    Variable(
        "LOG_LEVEL", choice("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"), default="INFO",
        help="Least severe log level written to standard output.",
    ),
    Variable(
        "LOG_FORMAT", LOG_FORMAT, default="",
        help="How log lines are written (docs/observability.md#logs): `json`, one object a "
             "line, or `text`; empty: text when DEBUG is on, JSON when it is off.",
    ),
    Variable(
        "SECURE_HSTS_SECONDS", INTEGER, default="31536000",
        help="How long browsers must use HTTPS only (Strict-Transport-Security); "
             "applies when DEBUG is off.",
    ),
    Variable(
        "SECURE_HSTS_PRELOAD", BOOLEAN, default="false",
        help="Ask browsers to preload HTTPS-only for this domain and its subdomains "
             "(Strict-Transport-Security preload). Opt-in: leaving the preload list takes months.",
    ),
    Variable(
        "LOGIN_FAILURE_LIMIT", COUNT, default="10",
        help="Failed sign-ins (site and admin) allowed per account, and per client address, "
             "before it is locked for LOGIN_LOCKOUT_MINUTES.",
    ),
    Variable(
        "LOGIN_LOCKOUT_MINUTES", COUNT, default="15",
        help="How long failed sign-ins count, and how long a lock lasts after the last one.",
    ),
    Variable(
        "PASSWORD_RESET_LIMIT", COUNT, default="5",
        help="Password-reset mails an hour per email address and per client address.",
    ),
    Variable(
        "EMAIL_URL", EMAIL_URL, default="console:", required_in_production=True, secret=True,
        production_schema=NOT_CONSOLE_MAIL,
        example=f"smtp://{{ cookiecutter.project_slug }}:{PLACEHOLDER}"
                "@mail.{{ cookiecutter.domain_name }}:587",
        help="How the site sends mail (password resets): `console:` prints it (development); "
             "`smtp://user:password@host:587` (STARTTLS) or `smtps://…:465` (TLS) delivers it. "
             "URL-encode special characters in the password.",
    ),
    Variable(
        "DEFAULT_FROM_EMAIL", EMAIL_ADDRESS, default="noreply@{{ cookiecutter.domain_name }}",
        help="Sender address of the site's mail.",
    ),
{%- if cookiecutter.ipfs == "yes" %}
    Variable(
        "IPFS_API_URL", HTTP_URL, default="http://localhost:5001",
        help="The Kubo node's RPC API, which stores uploads (docs/ipfs.md). Production "
             "refuses a public address, unless over https with IPFS_API_AUTH.",
    ),
    Variable(
        "IPFS_API_AUTH", HEADER_VALUE, default="", secret=True,
        help="Authorization header sent to IPFS_API_URL, for a node elsewhere behind a proxy or "
             "a pinning service's Kubo-compatible API (`Bearer <token>`); empty: none "
             "(docs/ipfs.md#an-ipfs-node-elsewhere).",
    ),
    Variable(
        "IPFS_GATEWAY_URL", URL_OR_PATH, default="/",
        help="Where browsers fetch uploads, as <this>/ipfs/<CID>: never the site's own origin. "
             "deploy/compose.yaml sets https://ipfs.<SITE_ADDRESS>, which Caddy serves; `/` (this "
             "site) redirects there; development's .env names the dev gateway.",
    ),
    Variable(
        "IPFS_MAX_UPLOAD_SIZE", COUNT, default="52428800",
        help="Largest upload, in bytes (default: 50 MiB): the whole request, the file and the "
             "form's few hundred bytes around it; Caddy refuses more (413). Other pages take 1 MiB.",
    ),
{%- endif %}
{%- if cookiecutter.tasks == "yes" %}
    Variable(
        "TASKS_KEEP_DAYS", COUNT, default="30",
        help="Days finished task results stay in the database (and the admin) before the "
             "nightly prune_task_results task deletes them (docs/tasks.md).",
    ),
    Variable(
        "TASKS_MAX_RUNTIME", COUNT, default="300",
        help="Seconds a task may run before the worker's health check calls the worker stuck "
             "(docs/tasks.md).",
    ),
{%- endif %}
    Variable(
        "WEB_CONCURRENCY", COUNT, default="2",
        help="gunicorn worker processes in production (config/gunicorn.conf.py): about one per "
             "CPU; each adds a few MiB, since the app is loaded once before they fork.",
    ),
    Variable(
        "WEB_THREADS", COUNT, default="4",
        help="Threads per gunicorn worker: requests one process serves at once.",
    ),
    # Error reports and traces (config/observability.py, docs/observability.md): each off, and its
    # library not even imported, until its variable is set.
    Variable(
        "SENTRY_DSN", SENTRY_DSN, default="", secret=True,
        help="Where errors are reported (Sentry, or a service that speaks its protocol): the "
             "project's DSN. Empty: nothing is sent.",
    ),
    Variable(
        "SENTRY_ENVIRONMENT", ONE_LINE, default="",
        help="The environment errors are filed under; empty: production, or development "
             "when DEBUG is on.",
    ),
    Variable(
        "SENTRY_TRACES_SAMPLE_RATE", FRACTION, default="0",
        help="Share of requests that also send Sentry a performance trace (0: none, 1: all).",
    ),
    Variable(
        "OTEL_EXPORTER_OTLP_ENDPOINT", OPTIONAL_HTTP_URL, default="",
        help="Where OpenTelemetry traces go, over OTLP/HTTP (a collector's base URL, e.g. "
             "http://collector:4318; /v1/traces is added). Empty: no tracing.",
    ),
    Variable(
        "OTEL_EXPORTER_OTLP_HEADERS", ONE_LINE, default="", secret=True,
        help="Headers sent with the traces, as name=value,name=value (a hosted service's API "
             "key). Empty: none.",
    ),
)


def load(environ, only=None):
    """{name: value} of the variables above (or `only` those named), or InvalidEnvironment."""
    return envschema.load(VARIABLES, environ, only)


InvalidEnvironment = envschema.InvalidEnvironment
