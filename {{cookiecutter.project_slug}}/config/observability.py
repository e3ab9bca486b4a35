"""Error reports (Sentry) and traces (OpenTelemetry), each off until its variable is set
(docs/observability.md). Off, its library is not even imported: it costs nothing.

settings.py calls start() once, in every process that loads the settings (gunicorn's master,
before it forks, since preload_app; manage.py's commands). Both SDKs send from a background
thread with a bounded queue, so a slow or unreachable endpoint delays no request (what does not
fit is dropped), and both start that thread again in each forked worker (os.register_at_fork in
OpenTelemetry's BatchSpanProcessor; sentry-sdk's worker checks its process ID), so starting
before the fork is right. Django's tracing is a middleware, which the settings cannot add to
themselves while they load: config/wsgi.py calls instrument_django() before it builds the app.
"""

import os

from config.logs import current_request_id

SERVICE_NAME = "{{ cookiecutter.project_slug }}"
# Seconds one export of traces may take (the SDK's default is 10), unless
# OTEL_EXPORTER_OTLP_TIMEOUT says otherwise: it bounds how long a stopping worker waits.
EXPORT_TIMEOUT = 5

_tracer_provider = None


def revision():
    """The image's source revision (git commit): the Dockerfile's ARG REVISION, which CI sets,
    kept in the image's environment. Not a setting: nobody sets it by hand."""
    return os.environ.get("REVISION", "").strip() or "unknown"


def start(env):
    """Start what `env` (config/env.py's values) turns on."""
    if env["SENTRY_DSN"]:
        _start_sentry(env)
    if env["OTEL_EXPORTER_OTLP_ENDPOINT"]:
        _start_tracing(env)


def _start_sentry(env):
    import sentry_sdk
    from sentry_sdk.scrubber import EventScrubber

    sentry_sdk.init(
        dsn=env["SENTRY_DSN"],
        release=revision(),
        environment=env["SENTRY_ENVIRONMENT"] or ("development" if env["DEBUG"] else "production"),
        # 0 as None: the SDK's tracing off altogether, not on and sampling nothing (which costs).
        traces_sample_rate=env["SENTRY_TRACES_SAMPLE_RATE"] or None,
        # No user's ID, name, email or address, no cookies, no Authorization header.
        send_default_pii=False,
        # No request body, ever: a form's fields (a password, whatever its field's name, which
        # Django's sensitive_post_parameters would name but the SDK does not read) stay here.
        max_request_body_size="never",
        # Local variables stay (they explain a traceback), but any named like a secret
        # (password, token, secret, session...) is blanked at every depth, not only the top.
        event_scrubber=EventScrubber(recursive=True),
        before_send=_tag_request_id,
    )


def _tag_request_id(event, hint):
    """Tag an event with its request's ID (Caddy's X-Request-ID, or the one config/logs.py made
    without Caddy), to find the request's log lines from the report."""
    if request_id := current_request_id():
        event.setdefault("tags", {})["request_id"] = request_id
    return event


def _start_tracing(env):
    global _tracer_provider
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.psycopg import PsycopgInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.util.re import parse_env_headers

    attributes = {"service.version": revision()}
    if not os.environ.get("OTEL_SERVICE_NAME"):  # the SDK's own variable wins
        attributes["service.name"] = SERVICE_NAME
    provider = TracerProvider(resource=Resource.create(attributes))
    # The endpoint, and any other OTEL_EXPORTER_OTLP_* variable, as the SDK reads them; the
    # headers (an API key) as config/env.py read them, since they may come from a _FILE.
    timeout_set = {"OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"} & set(os.environ)
    exporter = OTLPSpanExporter(
        headers=parse_env_headers(env["OTEL_EXPORTER_OTLP_HEADERS"], liberal=True) or None,
        timeout=None if timeout_set else EXPORT_TIMEOUT,
    )
    # Its queue holds 2048 spans (OTEL_BSP_MAX_QUEUE_SIZE); past that, spans are dropped.
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    PsycopgInstrumentor().instrument(tracer_provider=provider)
    _tracer_provider = provider


def instrument_django():
    """A server span for each request, the database's spans its children: Django's middleware,
    once the settings (which start() the rest) are loaded. Nothing when tracing is off."""
    from django.conf import settings

    settings.MIDDLEWARE  # noqa: B018 - loads the settings first, whose start() sets the provider
    if _tracer_provider is not None:
        from opentelemetry.instrumentation.django import DjangoInstrumentor

        DjangoInstrumentor().instrument(tracer_provider=_tracer_provider)
