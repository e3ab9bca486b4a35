"""The environment variables this project reads, each declared once.

A `Variable` names the variable, its type (a `schema` rule that checks and converts the
text), its default, whether production requires it, and one line of help. Settings read
them through `load()`, which reports every problem at once. `.env.example` and the
settings table in README.md are rendered from the same declarations:

    python -m config.env --write    # rewrite both
    python -m config.env --check    # exit 1 if either has drifted (a test and a hook run it)
"""

import argparse
import dataclasses
{%- if cookiecutter.ipfs == "yes" %}
import ipaddress
{%- endif %}
import re
import sys
import zoneinfo
from pathlib import Path
from urllib.parse import unquote, urlsplit

import dj_database_url
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from schema import And, Schema, SchemaError, Use

# The value .env.example shows for anything secret. Seeing it at start-up means a copy of
# the example was never filled in, so it is rejected wherever it appears.
PLACEHOLDER = "change-me"

# Django's own `check --deploy` thresholds for a strong SECRET_KEY (security.W009).
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5


@dataclasses.dataclass(frozen=True)
class Type:
    """How a variable's text is checked and converted, and what the docs call it."""

    label: str
    schema: Schema


@dataclasses.dataclass(frozen=True)
class Variable:
    name: str
    type: Type
    help: str
    default: str | None = None  # as text, exactly as it would be written in .env
    required_in_production: bool = False  # production (DEBUG off) must set it explicitly
    production_schema: Schema | None = None  # further rules on the value when DEBUG is off
    example: str | None = None  # what .env.example shows, when not the default
    # A secret can also come from a file, NAME_FILE=path (the convention of the official images,
    # e.g. POSTGRES_PASSWORD_FILE): Docker and Kubernetes secrets mount as files.
    secret: bool = False


def parse_boolean(text):
    words = {"true": True, "1": True, "yes": True, "on": True,
             "false": False, "0": False, "no": False, "off": False}
    return words[text.strip().lower()]


def parse_database_url(text):
    parts = urlsplit(text)
    if parts.scheme not in {"postgres", "postgresql"} or not parts.hostname:
        raise ValueError(text)
    if not parts.path.strip("/"):
        raise ValueError(text)
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    return dj_database_url.parse(text, conn_max_age=60, conn_health_checks=True)


# What ALLOWED_HOSTS accepts: "*", a name, ".name" for it and its subdomains, an IP address.
HOST_PATTERN = re.compile(r"^(\*|\.?[a-z0-9-]+(\.[a-z0-9-]+)*\.?|\[[a-f0-9:.]+\])$", re.IGNORECASE)


def parse_host_list(text):
    hosts = [host.strip() for host in text.split(",") if host.strip()]
    if not all(HOST_PATTERN.match(host) for host in hosts):
        raise ValueError(text)
    return hosts


def parse_host_name(text):
    hosts = parse_host_list(text)
    if len(hosts) != 1 or hosts[0] == "*" or hosts[0].startswith("."):
        raise ValueError(text)
    return hosts[0]


CONSOLE_MAIL = "django.core.mail.backends.console.EmailBackend"
SMTP_TIMEOUT = 10  # seconds: a mail server that hangs must not hang the request with it


def parse_email_url(text):
    """A MAILERS entry from `console:`, `smtp://user:password@host[:port]` (STARTTLS, port 587
    by default) or `smtps://...` (TLS from the first byte, port 465 by default)."""
    parts = urlsplit(text)
    if parts.scheme == "console" and not parts.netloc:
        return {"BACKEND": CONSOLE_MAIL}
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname or parts.path.strip("/"):
        raise ValueError(text)
    tls = parts.scheme == "smtp"
    return {"BACKEND": "django.core.mail.backends.smtp.EmailBackend", "OPTIONS": {
        "host": parts.hostname,
        "port": parts.port or (587 if tls else 465),  # .port raises ValueError if not a number
        "username": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "use_tls": tls,
        "use_ssl": not tls,
        "timeout": SMTP_TIMEOUT,
    }}


def is_email_address(text):
    """What Django's own EmailValidator accepts (noreply@localhost too), no more, no less."""
    try:
        validate_email(text)
    except ValidationError:
        return False
    return True


{%- if cookiecutter.ipfs == "yes" %}


def parse_http_url(text, path_allowed=False):
    """An http(s) base URL (or, if allowed, a path on this site), without a trailing slash."""
    parts = urlsplit(text)
    absolute = parts.scheme in {"http", "https"} and parts.hostname
    if not (absolute or path_allowed and text.startswith("/") and not parts.netloc) \
            or parts.query or parts.fragment:
        raise ValueError(text)
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    return text.rstrip("/")


def is_internal(url):
    """Whether a URL's host is private: a private or loopback address, or a name that only a
    private network resolves (one label, like a compose service, or under .internal, .local,
    .localhost or Kubernetes' .svc and .cluster.local)."""
    host = urlsplit(url).hostname
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return "." not in host or host.endswith(
            (".internal", ".local", ".localhost", ".svc", ".cluster.local"))
{%- endif %}


BOOLEAN = Type("boolean", Schema(Use(parse_boolean, error="not a boolean (use true or false)")))


def whole_number(minimum):
    return Type(f"integer ≥ {minimum}", Schema(And(
        Use(int, error="not a whole number"),
        lambda number: number >= minimum,
        error=f"not a whole number ≥ {minimum}",
    )))


INTEGER = whole_number(0)
COUNT = whole_number(1)
TEXT = Type("text", Schema(And(str, len, error="empty")))
DATABASE_URL = Type("URL", Schema(Use(
    parse_database_url,
    error="not a database URL like postgres://user:password@host:5432/name",
)))
HOST_LIST = Type("comma-separated host names", Schema(Use(
    parse_host_list, error="not a comma-separated list of host names",
)))
TIME_ZONE = Type("IANA time zone", Schema(And(
    lambda name: name in zoneinfo.available_timezones(),
    error="not a time zone that zoneinfo knows (e.g. Europe/Berlin)",
)))
PORT = Type("port number", Schema(And(
    Use(int, error="not a whole number"),
    lambda number: 0 <= number <= 65535,
    error="not a port number from 0 to 65535",
)))
EMAIL_URL = Type("mail URL", Schema(Use(
    parse_email_url,
    error="not a mail URL like smtp://user:password@mail.example.com:587 or console:",
)))
EMAIL_ADDRESS = Type("email address", Schema(And(
    str, is_email_address, error="not an email address like noreply@example.com",
)))
HOST_NAME = Type("host name", Schema(Use(
    parse_host_name, error="not a single host name like example.com",
)))
{%- if cookiecutter.ipfs == "yes" %}
HTTP_URL = Type("http(s) URL", Schema(Use(
    parse_http_url, error="not an http(s) URL like http://ipfs:5001",
)))
# A header value sent as it is: one line, or nothing.
HEADER_VALUE = Type("header value", Schema(And(
    str, lambda text: not re.search(r"[\r\n\x00]", text), error="not a one-line header value",
)))
URL_OR_PATH = Type("http(s) URL or path", Schema(Use(
    lambda text: parse_http_url(text, path_allowed=True),
    error="not an http(s) URL like https://ipfs.example.com, nor a path like /",
)))
{%- endif %}
TIME_OF_DAY = Type("time of day (HH:MM)", Schema(And(
    lambda text: re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", text),
    error="not a time of day like 03:00",
)))


def choice(*options):
    return Type(f"one of {', '.join(options)}", Schema(And(
        Use(str.upper), lambda value: value in options,
        error=f"not one of {', '.join(options)}",
    )))


def strong_secret_key():
    return Schema(And(
        And(lambda key: len(key) >= SECRET_KEY_MIN_LENGTH,
            error=f"shorter than {SECRET_KEY_MIN_LENGTH} characters"),
        And(lambda key: len(set(key)) >= SECRET_KEY_MIN_UNIQUE_CHARACTERS,
            error=f"fewer than {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different characters "
                  "(too little entropy)"),
        And(lambda key: not key.startswith("django-insecure"),
            error="Django's insecure development key"),
    ))


VARIABLES = (
    Variable(
        "DEBUG", BOOLEAN, default="false",
        help="Django's debug mode: detailed error pages, relaxed security. Never on in production.",
    ),
    Variable(
        "SECRET_KEY", TEXT, default="django-insecure-development-only",
        required_in_production=True, production_schema=strong_secret_key(),
        example=PLACEHOLDER, secret=True,
        help=f"Signs sessions and tokens. In production: secret, random, "
             f"≥ {SECRET_KEY_MIN_LENGTH} characters.",
    ),
    Variable(
        "ALLOWED_HOSTS", HOST_LIST, default="localhost,127.0.0.1,[::1]",
        required_in_production=True,
        production_schema=Schema(And(len, error="empty")),
        example="{{ cookiecutter.domain_name }}",
        help="Host names this site answers to.",
    ),
    Variable(
        "DATABASE_URL", DATABASE_URL, secret=True,
        example=f"postgres://{{ cookiecutter.project_slug }}:{PLACEHOLDER}"
                "@localhost:5432/{{ cookiecutter.project_slug }}",
        help="The PostgreSQL database.",
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
        help="Password-reset mails an hour per email address and per client address "
             "(per gunicorn worker).",
    ),
    Variable(
        "EMAIL_URL", EMAIL_URL, default="console:", required_in_production=True, secret=True,
        production_schema=Schema(And(lambda mailer: mailer["BACKEND"] != CONSOLE_MAIL,
                                     error="console: delivers no mail")),
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
        help="The Kubo node's RPC API, which stores uploads (README: Media on IPFS). Production "
             "refuses a public address, unless over https with IPFS_API_AUTH.",
    ),
    Variable(
        "IPFS_API_AUTH", HEADER_VALUE, default="", secret=True,
        help="Authorization header sent to IPFS_API_URL, for a node elsewhere behind a proxy or "
             "a pinning service's Kubo-compatible API (`Bearer <token>`); empty: none "
             "(README: An IPFS node elsewhere).",
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
    Variable(
        "WEB_CONCURRENCY", COUNT, default="2",
        help="gunicorn worker processes in production (config/gunicorn.conf.py): about one per "
             "CPU; "
             "each adds a few MiB, since the app is loaded once before they fork.",
    ),
    Variable(
        "WEB_THREADS", COUNT, default="4",
        help="Threads per gunicorn worker: requests one process serves at once.",
    ),
)


# Read by Docker Compose and Swarm (compose*.yaml), not by Django. Declared here so
# .env.example and README.md document them with the rest, and so a test can hold the compose
# files to this list: every variable a compose file names is declared in this module.
COMPOSE_VARIABLES = (
    Variable(
        "POSTGRES_PASSWORD", TEXT, required_in_production=True, example=PLACEHOLDER,
        help="Password of the database superuser the compose stacks create (when their volume "
             "is new): development's app, and production's backups and restores connect with it.",
    ),
    Variable(
        "POSTGRES_APP_PASSWORD", TEXT, required_in_production=True, example=PLACEHOLDER,
        help="Password of the app's database role in production, not a superuser "
             "(deploy/compose.yaml, deploy/scripts/db-app-role.sh): migrations and the app connect "
             "with it.",
    ),
    Variable(
        "HOST_UID", INTEGER, default="1000",
        help="User ID the development container and the backup service run as, so files "
             "they write to bind mounts are yours (`id -u`).",
    ),
    Variable(
        "HOST_GID", INTEGER, default="1000",
        help="Group ID the development container and the backup service run as (`id -g`).",
    ),
    Variable(
        "WEB_PORT", PORT, default="8000",
        help="Port on 127.0.0.1 for the development server (0: any free port).",
    ),
{%- if cookiecutter.ipfs == "yes" %}
    Variable(
        "IPFS_GATEWAY_PORT", PORT, default="8080",
        help="Port on 127.0.0.1 for the development IPFS gateway (0: any free port).",
    ),
{%- endif %}
{%- if cookiecutter.notebooks == "yes" %}
    Variable(
        "NOTEBOOK_PORT", PORT, default="8888",
        help="Port on 127.0.0.1 for JupyterLab, the notebook service (0: any free port).",
    ),
    Variable(
        "JUPYTER_TOKEN", TEXT, example=PLACEHOLDER,
        help="Token JupyterLab asks for (the notebook service): generated into .env at "
             "creation, never committed.",
    ),
{%- endif %}
    Variable(
        "SITE_ADDRESS", HOST_NAME, default="{{ cookiecutter.domain_name }}",
        help="Host name Caddy serves over HTTPS: a public name gets a Let's Encrypt "
             "certificate, localhost one from Caddy's own CA.",
    ),
    Variable(
        "HTTP_PORT", PORT, default="80",
        help="Host port for HTTP, which redirects to HTTPS (0: any free port).",
    ),
    Variable(
        "HTTPS_PORT", PORT, default="443",
        help="Host port for HTTPS (0: any free port).",
    ),
{%- if cookiecutter.ipfs == "yes" %}
    Variable(
        "IPFS_SWARM_PORT", PORT, default="4001",
        help="Host port (TCP and UDP) where other IPFS nodes reach the production node "
             "(0: any free port).",
    ),
{%- endif %}
    Variable(
        "IMAGE", TEXT, example="registry.example.com/{{ cookiecutter.project_slug }}:sha-1a2b3c4",
        help="The image `docker stack deploy -c deploy/swarm.yaml` runs, from a registry "
             "(deploy/compose.yaml builds its own).",
    ),
    Variable(
        "BACKUP_TIME", TIME_OF_DAY, default="03:00",
        help="The backup service backs up the database once a day, after this time (UTC).",
    ),
    Variable(
        "BACKUP_KEEP_DAILY", COUNT, default="7",
        help="Retention: days kept, each by its newest backup (the last days that have one).",
    ),
    Variable(
        "BACKUP_KEEP_WEEKLY", INTEGER, default="4",
        help="Retention: weeks kept besides, each by its newest backup (ISO weeks, Monday to "
             "Sunday, UTC).",
    ),
)


class InvalidEnvironment(Exception):
    """Every problem with the environment, one line per variable."""

    def __init__(self, problems):
        self.problems = problems  # {variable name: what is wrong}
        super().__init__(problems)

    def __str__(self):
        count = len(self.problems)
        lines = [f"The environment has {count} problem{'s' if count > 1 else ''}:"]
        lines += [f"  {name}: {problem}" for name, problem in self.problems.items()]
        lines.append("Every variable is described in .env.example and README.md.")
        return "\n".join(lines)


def load(environ):
    """Return {name: converted value} for every variable, or raise InvalidEnvironment."""
    values, problems, given = {}, {}, {}
    for variable in VARIABLES:
        try:
            given[variable.name] = _given(variable, environ)
            values[variable.name] = _read(variable, given[variable.name])
        except SchemaError as error:
            problems[variable.name] = error.code
    # Production rules apply unless DEBUG is validly on: an unreadable DEBUG gets the strict ones.
    if not values.get("DEBUG", False):
        for variable in VARIABLES:
            if variable.name not in problems:
                problem = _production_problem(variable, given[variable.name], values)
                if problem:
                    problems[variable.name] = problem
{%- if cookiecutter.ipfs == "yes" %}
        if "IPFS_API_URL" in values and "IPFS_API_AUTH" in values \
                and not _node_is_private_or_guarded(values):
            problems["IPFS_API_URL"] = ("a public address without https and IPFS_API_AUTH: the "
                                        "RPC API can read, add and delete anything")
{%- endif %}
    if problems:
        raise InvalidEnvironment(problems)
    return values


{%- if cookiecutter.ipfs == "yes" %}


def _node_is_private_or_guarded(values):
    """An RPC API on a private network, or a node elsewhere (a pinning service's) reached over
    https with a credential: anything else exposes it to whoever finds the address."""
    url = values["IPFS_API_URL"]
    return is_internal(url) or (url.startswith("https://") and bool(values["IPFS_API_AUTH"]))
{%- endif %}


def _given(variable, environ):
    """The variable's text as set ("" when it is not), from NAME or, for a secret, NAME_FILE."""
    text = environ.get(variable.name, "").strip()
    path = environ.get(f"{variable.name}_FILE", "").strip() if variable.secret else ""
    if not path:
        return text
    if text:
        raise SchemaError(f"set twice, as {variable.name} and as {variable.name}_FILE: keep one")
    try:
        text = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as error:
        raise SchemaError(f"{variable.name}_FILE={path} cannot be read "
                          f"({getattr(error, 'strerror', None) or error})") from None
    if not text:
        raise SchemaError(f"{variable.name}_FILE={path} is empty")
    return text


def _read(variable, text):
    if not text:
        if variable.default is None:
            raise SchemaError("missing")
        text = variable.default
    if PLACEHOLDER in text:
        raise SchemaError(f"still the placeholder {PLACEHOLDER!r} from .env.example: "
                          "set a real value")
    return variable.type.schema.validate(text)


def _production_problem(variable, text, values):
    if variable.required_in_production and not text:
        return "missing (production, with DEBUG off, requires it)"
    if variable.production_schema is not None:
        try:
            variable.production_schema.validate(values[variable.name])
        except SchemaError as error:
            return f"{error.code} (not allowed with DEBUG off)"
    return None


# --- documentation rendered from VARIABLES ---

ROOT = Path(__file__).resolve().parent.parent
TABLE_START = "<!-- settings table: rendered by `python -m config.env --write` -->"
TABLE_END = "<!-- end of settings table -->"


def render_env_example():
    lines = [
        "# Every environment variable this project reads, rendered from config/env.py by",
        "# `python -m config.env --write`: edit that file, not this one.",
        "# Copy to .env and replace every change-me; the app refuses to start with one left in.",
    ]
    for variable in VARIABLES:
        lines += _env_example_entry(variable)
    lines += ["", "", "# --- Read by Docker Compose and Swarm (compose*.yaml), not by Django ---"]
    for variable in COMPOSE_VARIABLES:
        lines += _env_example_entry(variable)
    return "\n".join(lines) + "\n"


def _env_example_entry(variable):
    required = "; required in production" if variable.required_in_production else ""
    default = f"; default: {variable.default}" if variable.default else ""
    from_file = f"; or in a file: {variable.name}_FILE=path" if variable.secret else ""
    return [
        "",
        f"# {variable.help}",
        f"# ({variable.type.label}{default}{required}{from_file})",
        f"{variable.name}={variable.example or variable.default}",
    ]


def render_settings_table():
    rows = _table(VARIABLES) + [
        "",
        "Read by Docker Compose and Swarm (`compose*.yaml`), not by Django:",
        "",
    ] + _table(COMPOSE_VARIABLES)
    return "\n".join([TABLE_START, *rows, TABLE_END])


def _table(variables):
    rows = [
        "| Variable | Type | Default | Required in production | What it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for variable in variables:
        default = (f"`{variable.default}`" if variable.default else
                   "(none)" if variable.default is not None else "(none: required)")
        required = "yes" if variable.required_in_production else ""
        label = variable.type.label + (f"; or in a file: `{variable.name}_FILE`"
                                       if variable.secret else "")
        rows.append(f"| `{variable.name}` | {label} | {default} | {required} "
                    f"| {variable.help} |")
    return rows


def rendered_files():
    """{path: the text it must have}: .env.example whole, README.md with its table replaced."""
    readme = ROOT / "README.md"
    text = readme.read_text()
    start, end = text.index(TABLE_START), text.index(TABLE_END) + len(TABLE_END)
    return {
        ROOT / ".env.example": render_env_example(),
        readme: text[:start] + render_settings_table() + text[end:],
    }


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m config.env", description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite .env.example and README.md")
    action.add_argument("--check", action="store_true", help="exit 1 if either has drifted")
    arguments = parser.parse_args(argv)
    stale = [path for path, text in rendered_files().items()
             if not path.exists() or path.read_text() != text]
    if arguments.check:
        for path in stale:
            sys.stderr.write(f"{path.name} is out of date: run `python -m config.env --write`\n")
        return 1 if stale else 0
    for path, text in rendered_files().items():
        path.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
