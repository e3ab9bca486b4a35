"""Log lines that explain a request (docs/observability.md#logs): in production one JSON object a
line on stdout, in development readable text; each with the ID of the request it belongs to.

- `RequestLogMiddleware` (first in MIDDLEWARE) takes the request's ID from `X-Request-ID`, which
  Caddy sets, or makes one (and returns it in the response) when nothing in front of Django did;
  and logs one line per request: method, path, status, duration and the signed-in user's ID.
- `current_request_id()` is that ID, for code that reports elsewhere (errors, tasks).
- `JsonFormatter` and `TextFormatter` add the ID (and a request's method and path, when the record
  carries the request, as Django's own `django.request` errors do) to every line.

Imported by config/gunicorn.conf.py before Django's settings: no settings are read here.
"""

import contextvars
import logging
import re
import time
import uuid
from datetime import UTC, datetime

# python-json-logger, not structlog: a formatter for the standard logging module, so the
# project's code (and Django's, and gunicorn's) logs as always: no second logging API to learn.
from django.utils.functional import empty
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter as BaseJsonFormatter

logger = logging.getLogger(__name__)

_request_id = contextvars.ContextVar("request_id", default=None)

# Caddy's IDs are UUIDs. One sent straight to gunicorn is kept if it looks like an ID (what another
# proxy or a client's tracing sets), else replaced: no long text, spaces or quotes in the logs.
WELL_FORMED_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# The probes answer the container's and the cluster's health checks every few seconds: their
# lines are DEBUG, so that they do not bury the requests people make.
PROBES = re.compile(r"^/(healthz|readyz)(/|$)")


def current_request_id():
    """The ID of the request being handled in this thread (or task), or None outside one."""
    return _request_id.get()


def _user_id(request):
    """The signed-in user's public ID (a short UUID), or None: only if the request has already
    loaded its user (the view, a template or sign-in did), so a log line never costs a query."""
    user = getattr(request, "user", None)
    wrapped = getattr(user, "_wrapped", user)  # a SimpleLazyObject until something reads it
    if wrapped is None or wrapped is empty:
        return None
    return str(wrapped.pk) if getattr(wrapped, "is_authenticated", False) else None


class RequestLogMiddleware:
    """Sets the request's ID for everything logged while it is handled, and logs the request."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        request_id = given if WELL_FORMED_ID.fullmatch(given) else str(uuid.uuid4())
        # Where Django's own log records find it: they carry the request, and some (a view's
        # 4xx or 5xx answer) are written after this middleware has returned.
        request.META["HTTP_X_REQUEST_ID"] = request_id
        token = _request_id.set(request_id)
        try:
            response = self.get_response(request)
            fields = {"method": request.method, "path": request.path,
                      "status": response.status_code,
                      "duration_ms": round((time.perf_counter() - started) * 1000, 1)}
            if user_id := _user_id(request):
                fields["user_id"] = user_id
            # INFO whatever the status: Django's `django.request` logger already writes a
            # WARNING for every 4xx and the one ERROR, with its traceback, for every 5xx.
            logger.log(logging.DEBUG if PROBES.match(request.path) else logging.INFO,
                       "%s %s %s", request.method, request.path, response.status_code,
                       extra=fields)
        finally:
            _request_id.reset(token)
        if request_id != given:  # Caddy returns its own ID: only one X-Request-ID header
            response["X-Request-ID"] = request_id
        return response


def request_fields(record):
    """The request's fields of a log record, for those that do not carry them already."""
    request = getattr(record, "request", None)
    meta = getattr(request, "META", None)  # not runserver's socket, which `django.server` carries
    fields = {"request_id": getattr(record, "request_id", None) or _request_id.get()
              or (meta or {}).get("HTTP_X_REQUEST_ID")}
    if meta is not None:
        fields |= {"method": request.method, "path": request.path, "user_id": _user_id(request)}
    return {name: value for name, value in fields.items()
            if value is not None and getattr(record, name, None) is None}


class JsonFormatter(BaseJsonFormatter):
    """{"time", "level", "logger", "message", "request_id", ...}: the record's own fields (a
    request line's, or whatever `extra=` a call passes), the traceback as one field."""

    def __init__(self, **options):
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={"levelname": "level", "name": "logger", "exc_info": "exception",
                           "status_code": "status"},  # django.request's name for it
            # The request itself, which Django's records carry (its repr shows the query
            # string), and runserver's time, which `time` already says.
            reserved_attrs=[*RESERVED_ATTRS, "request", "server_time"],
            **options)

    def add_fields(self, log_data, record, message_dict):
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds")
        super().add_fields(log_data, record, message_dict)
        log_data.setdefault("request_id", None)
        log_data |= request_fields(record)


class TextFormatter(logging.Formatter):
    """One readable line, the request's ID at the end when there is one."""

    def __init__(self, **options):
        super().__init__("{asctime} {levelname} {name}: {message}", style="{", **options)

    def format(self, record):
        text = super().format(record)
        request_id = getattr(record, "request_id", None) or request_fields(record).get("request_id")
        if not request_id:
            return text
        first, newline, rest = text.partition("\n")  # after the message, before a traceback
        return f"{first} [request {request_id}]{newline}{rest}"


def logging_config(log_format, debug, level, loggers):
    """The logging configuration of Django's settings and of gunicorn: every line on stdout
    through one handler, in one format (LOG_FORMAT; empty: text in development, JSON in
    production), from `level` up; `loggers` as dictConfig reads them. A new dict each call
    (dictConfig edits what it reads)."""
    kind = log_format or ("text" if debug else "json")
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": {"json": JsonFormatter, "text": TextFormatter}[kind]}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "stream": "ext://sys.stdout",
                                "formatter": "default", "level": level}},
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": loggers,
    }
