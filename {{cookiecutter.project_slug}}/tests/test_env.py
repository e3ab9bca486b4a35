"""Property tests of config/env.py: every valid environment loads, every invalid one is
refused with a message that names each bad variable and what is wrong with it; and of the
few that gunicorn's settings read, and of .env.example, rendered from them."""

import string
import subprocess
import sys
import tempfile
import zoneinfo
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config import env, env_example, envschema

NAMES = [variable.name for variable in env.VARIABLES]
TRUE, FALSE = ["true", "True", "1", "yes", "ON"], ["false", "FALSE", "0", "no", "off"]

host_names = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?(\.[a-z]{2,10}){0,3}\Z")
strong_keys = st.text(string.ascii_letters + string.digits + "!#%&()*+,-./:;<=>?@[]^_{|}~",
                      min_size=envschema.SECRET_KEY_MIN_LENGTH, max_size=100).filter(
    lambda key: len(set(key)) >= envschema.SECRET_KEY_MIN_UNIQUE_CHARACTERS
    and not key.startswith("django-insecure"))
url_text = st.text(string.ascii_letters + string.digits + "@:/%#?! ", min_size=1, max_size=20)
mail_urls = st.builds(
    "{}://{}:{}@{}:{}".format, st.sampled_from(["smtp", "smtps"]),
    url_text.map(lambda text: quote(text, safe="")), url_text.map(lambda text: quote(text, safe="")),
    host_names, st.integers(1, 65535))
# Addresses Django's EmailValidator accepts: no leading, trailing or doubled dot before the @, no
# hyphen at either end of a domain label.
emails = st.builds("{}@{}.{}".format, st.from_regex(r"\A[a-z0-9+_-]{1,10}(\.[a-z0-9+_-]{1,9})?\Z"),
                   st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,18}[a-z0-9])?\Z"),
                   st.sampled_from(["com", "org", "co.uk"]))
# Any line, even with what a URL reserves (@:/%#?): the default DATABASE_URL encodes it.
passwords = st.text(string.ascii_letters + string.digits + string.punctuation + " ",
                    min_size=1, max_size=30).filter(
    lambda text: text.strip() == text and envschema.PLACEHOLDER not in text)
database_urls = st.builds(
    "postgres://{}:{}@{}:{}/{}".format,
    st.from_regex(r"\A[a-z_][a-z0-9_]{0,15}\Z"),
    st.text(string.ascii_letters + string.digits, min_size=1, max_size=30),
    host_names, st.integers(1, 65535), st.from_regex(r"\A[a-z_][a-z0-9_]{0,15}\Z"),
)


@st.composite
def production_environments(draw):
    """A complete, valid environment with DEBUG off, as production has it."""
    return {
        "DEBUG": draw(st.sampled_from(FALSE)),
        "SECRET_KEY": draw(strong_keys),
        "ALLOWED_HOSTS": ",".join(draw(st.lists(host_names, min_size=1, max_size=4))),
        "POSTGRES_PASSWORD": draw(passwords),
        "DATABASE_URL": draw(database_urls),
        "TIME_ZONE": draw(st.sampled_from(sorted(zoneinfo.available_timezones()))),
        "LOG_LEVEL": draw(st.sampled_from(["debug", "INFO", "Warning", "ERROR", "CRITICAL"])),
        "SECURE_HSTS_SECONDS": str(draw(st.integers(0, 10**9))),
        "EMAIL_URL": draw(mail_urls),
        "DEFAULT_FROM_EMAIL": draw(emails),
        "WEB_CONCURRENCY": str(draw(st.integers(1, 64))),
        "WEB_THREADS": str(draw(st.integers(1, 64))),
{%- if cookiecutter.tasks == "yes" %}
        "TASKS_KEEP_DAYS": str(draw(st.integers(1, 3650))),
        "TASKS_MAX_RUNTIME": str(draw(st.integers(1, 86400))),
{%- endif %}
{%- if cookiecutter.ipfs == "yes" %}
        "IPFS_API_AUTH": draw(st.sampled_from(["Bearer 0123456789abcdef", "Basic dTpw"])),
{%- endif %}
    }


# For each variable: values that must be refused, and a word the refusal must contain.
INVALID = {
    "DEBUG": (st.sampled_from(["maybe", "2", "yes please", "tru"]), "not a boolean"),
    "SECRET_KEY": (st.text(string.ascii_letters, min_size=1,
                           max_size=envschema.SECRET_KEY_MIN_LENGTH - 1), "shorter than"),
    "ALLOWED_HOSTS": (st.sampled_from(["exa mple.com", "http://example.com", "a/b", "ex_ample.com"]),
                      "not a comma-separated list of host names"),
    "POSTGRES_PASSWORD": (st.sampled_from(["a\nb", "pass\rword"]), "not one line of text"),
    "DATABASE_URL": (st.sampled_from(["nope", "mysql://u:p@h/db", "postgres://h:port/db",
                                      "postgres:///", "postgres://user@host"]),
                     "not a database URL"),
    "TIME_ZONE": (st.sampled_from(["Mars/Olympus_Mons", "UTC+1", "Europe/Berlinn"]),
                  "not a time zone"),
    "LOG_LEVEL": (st.sampled_from(["LOUD", "trace", "5"]), "not one of"),
    "SECURE_HSTS_SECONDS": (st.sampled_from(["-1", "ten", "1.5", "1e3"]), "not a whole number"),
    "SECURE_HSTS_PRELOAD": (st.sampled_from(["preload", "2", "maybe"]), "not a boolean"),
    "LOGIN_FAILURE_LIMIT": (st.sampled_from(["0", "-1", "ten", "1.5"]), "not a whole number ≥ 1"),
    "LOGIN_LOCKOUT_MINUTES": (st.sampled_from(["0", "15m", "1e2"]), "not a whole number ≥ 1"),
    "PASSWORD_RESET_LIMIT": (st.sampled_from(["0", "-5", "five"]), "not a whole number ≥ 1"),
    "EMAIL_URL": (st.sampled_from(["mail.example.com", "smtp://", "http://mail.example.com",
                                   "smtp://mail.example.com:25x", "console://mail.example.com",
                                   "smtp://u:p@mail.example.com/path"]), "not a mail URL"),
    "DEFAULT_FROM_EMAIL": (st.sampled_from(["noreply", "a@b", "@example.com", "a b@example.com"]),
                           "not an email address"),
    "WEB_CONCURRENCY": (st.sampled_from(["0", "-2", "four", "2.5"]), "not a whole number ≥ 1"),
    "WEB_THREADS": (st.sampled_from(["0", "-1", "many", "1e2"]), "not a whole number ≥ 1"),
{%- if cookiecutter.tasks == "yes" %}
    "TASKS_KEEP_DAYS": (st.sampled_from(["0", "-1", "a month", "30d"]), "not a whole number ≥ 1"),
    "TASKS_MAX_RUNTIME": (st.sampled_from(["0", "-5", "5m", "1.5"]), "not a whole number ≥ 1"),
{%- endif %}
{%- if cookiecutter.ipfs == "yes" %}
    "IPFS_API_URL": (st.sampled_from(["ipfs:5001", "ftp://ipfs", "http://", "/api",
                                      "http://ipfs:50o1", "http://ipfs:5001/?a=b"]),
                     "not an http(s) URL"),
    "IPFS_GATEWAY_URL": (st.sampled_from(["ipfs.example.com", "ftp://ipfs", "//host/x",
                                          "http://gateway:80a"]), "not an http(s) URL"),
    "IPFS_MAX_UPLOAD_SIZE": (st.sampled_from(["0", "-1", "50MB", "1e6"]), "not a whole number ≥ 1"),
    "IPFS_API_AUTH": (st.sampled_from(["Bearer a\nb", "Basic x\r\ny", "a\x00b"]),
                      "not a one-line header value"),
{%- endif %}
}


def test_every_variable_has_invalid_examples():
    assert set(INVALID) == set(NAMES)


@given(production_environments())
def test_every_valid_production_environment_loads(environ):
    values = env.load(environ)
    assert values["DEBUG"] is False
    assert values["SECRET_KEY"] == environ["SECRET_KEY"]
    assert values["ALLOWED_HOSTS"] == environ["ALLOWED_HOSTS"].split(",")
    assert values["DATABASE_URL"]["ENGINE"] == "django.db.backends.postgresql"
    assert values["TIME_ZONE"] == environ["TIME_ZONE"]
    assert values["LOG_LEVEL"] == environ["LOG_LEVEL"].upper()
    assert values["SECURE_HSTS_SECONDS"] == int(environ["SECURE_HSTS_SECONDS"])
    mailer = values["EMAIL_URL"]["OPTIONS"]
    scheme, rest = environ["EMAIL_URL"].split("://")
    credentials, server = rest.rsplit("@", 1)
    assert [mailer["username"], mailer["password"]] == [unquote(part) for part in credentials.split(":")]
    assert f"{mailer['host']}:{mailer['port']}" == server
    assert (mailer["use_tls"], mailer["use_ssl"]) == (scheme == "smtp", scheme == "smtps")


@given(production_environments(), st.sampled_from(TRUE + FALSE))
def test_booleans_read_as_people_write_them(environ, word):
    environ["DEBUG"] = word
    assert env.load(environ)["DEBUG"] is (word in TRUE)


@given(st.data(), production_environments(), st.sets(st.sampled_from(NAMES), min_size=1))
def test_every_problem_is_reported_at_once(data, environ, broken):
    for name in broken:
        environ[name] = data.draw(INVALID[name][0], label=name)
    with pytest.raises(env.InvalidEnvironment) as refused:
        env.load(environ)
    assert set(refused.value.problems) == broken
    for name in broken:
        assert INVALID[name][1] in refused.value.problems[name]
        assert f"  {name}: " in str(refused.value)


# DATABASE_URL too, though its development default could be built from POSTGRES_PASSWORD.
@given(production_environments(),
       st.sampled_from(["SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "EMAIL_URL"]))
def test_production_requires_its_variables(environ, name):
    del environ[name]
    with pytest.raises(env.InvalidEnvironment) as refused:
        env.load(environ)
    assert refused.value.problems == {name: "missing (production, with DEBUG off, requires it)"}


@given(production_environments(), st.sampled_from(NAMES))
def test_a_placeholder_left_in_is_refused(environ, name):
    environ[name] = f"x{envschema.PLACEHOLDER}x"
    with pytest.raises(env.InvalidEnvironment) as refused:
        env.load(environ)
    assert "placeholder" in refused.value.problems[name]


@pytest.mark.parametrize(("key", "problem"), [
    ("a" * 60, "fewer than 5 different characters"),
    ("django-insecure-" + string.ascii_letters, "insecure development key"),
])
def test_weak_secret_keys_are_refused_in_production(key, problem):
    environ = {"SECRET_KEY": key, "ALLOWED_HOSTS": "example.com",
               "DATABASE_URL": "postgres://u:p@db:5432/app"}
    with pytest.raises(env.InvalidEnvironment) as refused:
        env.load(environ)
    assert problem in refused.value.problems["SECRET_KEY"]


def test_development_needs_only_a_database():
    values = env.load({"DEBUG": "true", "DATABASE_URL": "postgres://u:p@localhost:5432/app"})
    assert values["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]
    assert values["EMAIL_URL"] == {"BACKEND": "django.core.mail.backends.console.EmailBackend"}


@given(production_environments())
def test_production_refuses_to_print_mail_instead_of_sending_it(environ):
    environ["EMAIL_URL"] = "console:"
    with pytest.raises(env.InvalidEnvironment) as refused:
        env.load(environ)
    assert refused.value.problems == {"EMAIL_URL": "console: delivers no mail (not allowed with DEBUG off)"}


@pytest.mark.parametrize(("url", "port", "tls"), [
    ("smtp://mail.example.com", 587, "use_tls"), ("smtps://mail.example.com", 465, "use_ssl")])
def test_mail_ports_default_to_their_tls_mode(url, port, tls):
    mailer = env.load({"DEBUG": "true", "DATABASE_URL": "postgres://u:p@db:5432/app",
                       "EMAIL_URL": url})["EMAIL_URL"]["OPTIONS"]
    assert (mailer["port"], mailer[tls], mailer["username"]) == (port, True, "")


def test_an_empty_variable_counts_as_missing():
    with pytest.raises(env.InvalidEnvironment) as refused:
        env.load({"DEBUG": "true", "DATABASE_URL": "  ", "POSTGRES_PASSWORD": ""})
    assert refused.value.problems == {
        "DATABASE_URL": "missing, and its default needs POSTGRES_PASSWORD, not set either"}


@given(passwords)
def test_development_writes_the_database_password_once(password):
    """.env as generated: POSTGRES_PASSWORD, which compose creates the database with, and no
    DATABASE_URL, whose default is the same database on localhost, with that password."""
    database = env.load({"DEBUG": "true", "POSTGRES_PASSWORD": password})["DATABASE_URL"]
    assert (database["USER"], database["PASSWORD"]) == ("{{ cookiecutter.project_slug }}", password)
    assert (database["HOST"], database["PORT"], database["NAME"]) == (
        "localhost", 5432, "{{ cookiecutter.project_slug }}")


def test_a_bad_environment_stops_django_with_one_message_and_no_traceback():
    bad = {"DEBUG": "maybe", "SECRET_KEY": "short", "ALLOWED_HOSTS": "example.com",
           "DATABASE_URL": "nope", "EMAIL_URL": "smtp://mail.example.com"}
    result = subprocess.run([sys.executable, "manage.py", "check"], env=bad, text=True,
                            capture_output=True, cwd=Path(__file__).parent.parent, check=False)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "The environment has 3 problems:" in result.stderr
    for line in ("DEBUG: not a boolean", "SECRET_KEY: shorter than 50 characters",
                 "DATABASE_URL: not a database URL"):
        assert line in result.stderr


def test_compose_variables_defaults_have_their_own_type():
    for variable in env_example.COMPOSE_VARIABLES:
        if variable.default is not None:
            variable.type.schema.validate(variable.default)


@given(st.times())
def test_a_time_of_day_is_hours_and_minutes(time):
    assert envschema.TIME_OF_DAY.schema.is_valid(time.strftime("%H:%M"))
    assert not envschema.TIME_OF_DAY.schema.is_valid(time.strftime("%H:%M:%S"))
    assert not envschema.TIME_OF_DAY.schema.is_valid(f"{time.hour + 24}:{time.minute:02}")


def test_env_example_matches_the_declarations():
    assert env_example.ENV_EXAMPLE.read_text() == env_example.render(), \
        "run `python -m config.env_example --write`"


SECRETS = [variable.name for variable in env.VARIABLES if variable.secret]


def test_the_secrets_can_come_from_files():
    assert {"SECRET_KEY", "POSTGRES_PASSWORD", "DATABASE_URL", "EMAIL_URL"} <= set(SECRETS)


@given(production_environments(), st.sets(st.sampled_from(SECRETS), min_size=1),
       st.sampled_from(["", "\n", "\r\n", "  \n\n"]))
def test_a_secret_in_a_file_reads_as_the_same_value(environ, in_files, ending):
    expected = env.load(environ)
    with tempfile.TemporaryDirectory() as directory:
        for name in in_files:
            path = Path(directory, name.lower())
            path.write_text(environ.pop(name) + ending)
            environ[f"{name}_FILE"] = str(path)
        assert env.load(environ) == expected


@given(production_environments(), st.sets(st.sampled_from(SECRETS), min_size=1))
def test_a_secret_set_twice_is_refused(environ, twice):
    with tempfile.TemporaryDirectory() as directory:
        for name in twice:
            path = Path(directory, name)
            path.write_text(environ[name])
            environ[f"{name}_FILE"] = str(path)
        with pytest.raises(env.InvalidEnvironment) as refused:
            env.load(environ)
    assert refused.value.problems == {
        name: f"set twice, as {name} and as {name}_FILE: keep one" for name in twice}


@pytest.mark.parametrize(("content", "problem"), [
    (None, "cannot be read (No such file or directory)"),
    ("", "is empty"),
    (" \n", "is empty"),
    (b"\xff\xfe", "cannot be read"),
])
def test_a_secret_file_that_gives_nothing_is_reported_with_the_other_problems(
        tmp_path, content, problem):
    path = tmp_path / "secret_key"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    environ = {"SECRET_KEY_FILE": str(path), "ALLOWED_HOSTS": "example.com",
               "DATABASE_URL": "nope", "EMAIL_URL": "smtp://mail.example.com"}
    with pytest.raises(env.InvalidEnvironment) as refused:
        env.load(environ)
    assert set(refused.value.problems) == {"SECRET_KEY", "DATABASE_URL"}
    assert refused.value.problems["SECRET_KEY"].startswith(f"SECRET_KEY_FILE={path} ")
    assert problem in refused.value.problems["SECRET_KEY"]


def test_a_directory_is_not_a_secret_file(tmp_path):
    with pytest.raises(env.InvalidEnvironment) as refused:
        env.load({"DEBUG": "true", "DATABASE_URL_FILE": str(tmp_path)})
    assert refused.value.problems == {
        "DATABASE_URL": f"DATABASE_URL_FILE={tmp_path} cannot be read (Is a directory)"}


def test_a_file_counts_only_for_secrets(tmp_path):
    (tmp_path / "debug").write_text("true")
    values = env.load({"DEBUG": "true", "DEBUG_FILE": str(tmp_path / "missing"),
                       "DATABASE_URL": "postgres://u:p@db:5432/app"})
    assert values["DEBUG"] is True
    with pytest.raises(env.InvalidEnvironment) as refused:
        env.load({"DEBUG_FILE": str(tmp_path / "debug"), "DATABASE_URL": "postgres://u:p@db/app"})
    assert "SECRET_KEY" in refused.value.problems  # DEBUG stayed off: production's rules apply


PROJECT = Path(__file__).parent.parent


def test_gunicorn_reads_its_two_variables_without_the_other_settings():
    """No SECRET_KEY, no database: config/gunicorn.conf.py loads, and loads no Django settings."""
    script = ("import runpy, sys; config = runpy.run_path('config/gunicorn.conf.py'); "
              "print(config['workers'], config['threads'], 'config.settings' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT, text=True,
                            capture_output=True, check=False,
                            env={"WEB_CONCURRENCY": "3", "WEB_THREADS": "5"})
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split() == ["3", "5", "False"]


def test_gunicorn_refuses_a_bad_worker_count_with_djangos_message():
    bad = {"WEB_CONCURRENCY": "0", "WEB_THREADS": "-1"}
    gunicorn = subprocess.run(
        [sys.executable, "-m", "gunicorn", "--config", "config/gunicorn.conf.py", "--check-config",
         "config.wsgi"], env=bad, cwd=PROJECT, text=True, capture_output=True, check=False)
    django = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=PROJECT, text=True, capture_output=True,
        env=bad | {"DEBUG": "true", "DATABASE_URL": "postgres://u:p@db:5432/app"}, check=False)
    assert gunicorn.returncode == django.returncode == 1
    assert gunicorn.stderr == django.stderr
    assert "  WEB_CONCURRENCY: not a whole number ≥ 1\n" in gunicorn.stderr


def test_only_reports_the_variables_it_names():
    environ = {"SECRET_KEY": "short", "WEB_CONCURRENCY": "4"}
    assert env.load(environ, only={"WEB_CONCURRENCY"}) == {"WEB_CONCURRENCY": 4}
    with pytest.raises(env.InvalidEnvironment) as refused:
        env.load(environ, only={"WEB_CONCURRENCY", "SECRET_KEY"})
    assert refused.value.problems == {"SECRET_KEY": "shorter than 50 characters (not allowed "
                                                    "with DEBUG off)"}
    with pytest.raises(ValueError, match="not declared: WEB_THREAD"):
        env.load(environ, only={"WEB_THREAD"})
