"""The machinery behind config/env.py: the types that check and convert a variable's text, and
`load()`, which reads the declared variables from an environment and reports every problem at once.
"""

import dataclasses
{%- if cookiecutter.ipfs == "yes" %}
import ipaddress
{%- endif %}
import re
import zoneinfo
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

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
    # As text, exactly as it would be written in .env; None: the variable must be set. `${NAME}`
    # in it stands for another variable's value, URL-encoded (DATABASE_URL's, from the password).
    default: str | None = None
    required_in_production: bool = False  # production (DEBUG off) must set it explicitly
    production_schema: Schema | None = None  # further rules on the value when DEBUG is off
    example: str | None = None  # what .env.example shows, when not the default
    # A secret can also come from a file, NAME_FILE=path (the convention of the official images,
    # e.g. POSTGRES_PASSWORD_FILE): Docker{% if cookiecutter.kubernetes == "yes" %} and Kubernetes{% endif %} secrets mount as files.
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


def parse_http_url(text, path_allowed=False):
    """An http(s) base URL (or, if allowed, a path on this site), without a trailing slash."""
    parts = urlsplit(text)
    absolute = parts.scheme in {"http", "https"} and parts.hostname
    if not (absolute or path_allowed and text.startswith("/") and not parts.netloc) \
            or parts.query or parts.fragment:
        raise ValueError(text)
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    return text.rstrip("/")


def parse_optional(parse):
    """`parse`, for a variable whose empty value means "off"."""
    return lambda text: parse(text) if text else ""


def parse_sentry_dsn(text):
    """A DSN as sentry-sdk reads it (https://<public key>@<host>/<project ID>), checked by the SDK's
    own parser, imported here only when one is given."""
    from sentry_sdk.utils import Dsn

    Dsn(text)  # raises BadDsn, a ValueError
    return text


def parse_fraction(text):
    number = float(text)
    if not 0 <= number <= 1:
        raise ValueError(text)
    return number
{%- if cookiecutter.ipfs == "yes" %}


def is_internal(url):
    """Whether a URL's host is private: a private or loopback address, or a name that only a
    private network resolves (one label, like a compose service, or under .internal, .local,
    .localhost{% if cookiecutter.kubernetes == "yes" %} or Kubernetes' .svc and .cluster.local{% else %}, .svc or .cluster.local{% endif %})."""
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
ONE_LINE = Type("one line of text", Schema(And(
    str, lambda text: not re.search(r"[\r\n\x00]", text), error="not one line of text",
)))
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
# Empty: off (an optional service, like error reporting).
OPTIONAL_HTTP_URL = Type("http(s) URL", Schema(Use(
    parse_optional(parse_http_url), error="not an http(s) URL like http://collector:4318",
)))
SENTRY_DSN = Type("Sentry DSN", Schema(Use(
    parse_optional(parse_sentry_dsn),
    error="not a Sentry DSN like https://<public key>@o123.ingest.sentry.io/<project ID>",
)))
FRACTION = Type("number from 0 to 1", Schema(Use(
    parse_fraction, error="not a number from 0 to 1 (like 0.1)",
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
# Empty: chosen by DEBUG (config/logs.py's log_format).
LOG_FORMAT = Type("json, text or empty", Schema(And(
    Use(str.lower), lambda value: value in {"", "json", "text"}, error="not json or text",
)))
TIME_OF_DAY = Type("time of day (HH:MM)", Schema(And(
    lambda text: re.fullmatch(r"([01][0-9]|2[0-3]):[0-5][0-9]", text),
    error="not a time of day like 03:00",
)))


def choice(*options):
    return Type(f"one of {', '.join(options)}", Schema(And(
        Use(str.upper), lambda value: value in options,
        error=f"not one of {', '.join(options)}",
    )))


# Production rules (Variable.production_schema), on the converted value.
STRONG_SECRET_KEY = Schema(And(
    And(lambda key: len(key) >= SECRET_KEY_MIN_LENGTH,
        error=f"shorter than {SECRET_KEY_MIN_LENGTH} characters"),
    And(lambda key: len(set(key)) >= SECRET_KEY_MIN_UNIQUE_CHARACTERS,
        error=f"fewer than {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different characters "
              "(too little entropy)"),
    And(lambda key: not key.startswith("django-insecure"),
        error="Django's insecure development key"),
))
NOT_EMPTY = Schema(And(len, error="empty"))
NOT_CONSOLE_MAIL = Schema(And(lambda mailer: mailer["BACKEND"] != CONSOLE_MAIL,
                              error="console: delivers no mail"))


class InvalidEnvironment(Exception):
    """Every problem with the environment, one line per variable."""

    def __init__(self, problems):
        self.problems = problems  # {variable name: what is wrong}
        super().__init__(problems)

    def __str__(self):
        count = len(self.problems)
        lines = [f"The environment has {count} problem{'s' if count > 1 else ''}:"]
        lines += [f"  {name}: {problem}" for name, problem in self.problems.items()]
        lines.append("Every variable is described in .env.example.")
        return "\n".join(lines)


def load(variables, environ, only=None):
    """Return {name: converted value} for every variable, or raise InvalidEnvironment.

    `only` (names): return those and report their problems only, read and checked exactly as
    when every variable is loaded, so that a process that needs a few (gunicorn's settings)
    starts without the others (SECRET_KEY & co.)."""
    names = {variable.name for variable in variables}
    wanted = names if only is None else set(only)
    if not wanted <= names:
        raise ValueError(f"not declared: {', '.join(sorted(wanted - names))}")
    given, values, problems = _read_all(variables, environ)
    # Production rules apply unless DEBUG is validly on: an unreadable DEBUG gets the strict ones.
    if not values.get("DEBUG", False):
        problems |= _production_problems(variables, given, values)
    problems = {name: problem for name, problem in problems.items() if name in wanted}
    if problems:
        raise InvalidEnvironment(problems)
    return {name: value for name, value in values.items() if name in wanted}


def _read_all(variables, environ):
    """{name: text as given}, {name: value}, {name: problem}. Every text is read before any
    value, since a default can be built from another variable's text."""
    given, values, problems = {}, {}, {}
    for variable in variables:
        try:
            given[variable.name] = _given(variable, environ)
        except SchemaError as error:
            problems[variable.name] = error.code
    for variable in variables:
        if variable.name in given:
            try:
                values[variable.name] = _read(variable, given)
            except SchemaError as error:
                problems[variable.name] = error.code
    return given, values, problems


def _production_problems(variables, given, values):
    problems = {}
    for variable in variables:
        problem = _production_problem(variable, given, values)
        if problem:
            problems[variable.name] = problem
{%- if cookiecutter.ipfs == "yes" %}
    if "IPFS_API_URL" in values and "IPFS_API_AUTH" in values \
            and not _node_is_private_or_guarded(values):
        problems["IPFS_API_URL"] = ("a public address without https and IPFS_API_AUTH: the "
                                    "RPC API can read, add and delete anything")
{%- endif %}
    return problems


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


REFERENCE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")  # ${NAME} in a default


def _read(variable, given):
    text = given[variable.name]
    if PLACEHOLDER in text:
        raise SchemaError(f"still the placeholder {PLACEHOLDER!r} from .env.example: "
                          "set a real value")
    return variable.type.schema.validate(text or _default(variable, given))


def _default(variable, given):
    if variable.default is None:
        raise SchemaError("missing")
    unset = [name for name in REFERENCE.findall(variable.default) if not given.get(name)]
    if unset:
        raise SchemaError(f"missing, and its default needs {', '.join(unset)}, not set either")
    return REFERENCE.sub(lambda reference: quote(given[reference[1]], safe=""), variable.default)


def _production_problem(variable, given, values):
    if variable.name not in given:  # its file could not be read: that is the problem
        return None
    if variable.required_in_production and not given[variable.name]:
        return "missing (production, with DEBUG off, requires it)"
    if variable.production_schema is not None and variable.name in values:
        try:
            variable.production_schema.validate(values[variable.name])
        except SchemaError as error:
            return f"{error.code} (not allowed with DEBUG off)"
    return None
