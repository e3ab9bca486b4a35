"""Refuse bad answers before anything is written: one line per problem, then exit 1."""

import json
import keyword
import re
import sys
import zoneinfo

ANSWERS = json.loads({{ cookiecutter | jsonify | tojson }})

# Top-level names the generated project imports or creates. A slug equal to one of them, or
# to a standard library module, would shadow it and break the project in confusing ways.
TAKEN_NAMES = {
    "config", "debug_toolbar", "dj_database_url", "django", "gunicorn", "hypothesis", "manage",
    "psycopg", "pytest", "pytest_django", "schema", "shortuuid", "test", "tests", "uuid6",
    "whitenoise",
}
# And those the notebooks option adds: the notebooks/ folder and what its notebooks import.
NOTEBOOK_NAMES = {"matplotlib", "nbclient", "nbformat", "notebooks", "pandas"}
# And those the tasks option adds: the worker's packages.
TASK_NAMES = {"cronsim", "django_tasks_db"}
EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
DOMAIN_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# The last label Django's EmailValidator requires of a domain other than localhost: the project
# sends mail as noreply@<domain_name>, which production settings refuse unless Django accepts it.
TOP_LEVEL_DOMAIN = re.compile(r"^(?!-)([a-z-]{2,63}|xn--[a-z0-9]{1,59})(?<!-)$")


def slug_problems(slug, notebooks="no", tasks="no"):
    if not re.fullmatch(r"[a-z][a-z0-9_]*", slug):
        return [f"project_slug {slug!r} is not a lowercase Python identifier "
                "(letters, digits and _, starting with a letter)"]
    if keyword.iskeyword(slug) or keyword.issoftkeyword(slug):
        return [f"project_slug {slug!r} is a Python keyword"]
    taken = TAKEN_NAMES | (NOTEBOOK_NAMES if notebooks == "yes" else set()) \
        | (TASK_NAMES if tasks == "yes" else set())
    if slug in taken or slug in sys.stdlib_module_names:
        return [f"project_slug {slug!r} would shadow the module {slug!r} that the project imports"]
    return []


def domain_is_well_formed(domain):
    labels = domain.split(".")
    return len(domain) <= 253 and all(DOMAIN_LABEL.match(label) for label in labels)


def domain_takes_mail(domain):
    labels = domain.split(".")
    return domain == "localhost" or (len(labels) > 1 and bool(TOP_LEVEL_DOMAIN.match(labels[-1])))


def timezone_is_known(name):
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


# What starts template code; spelt in parts, since cookiecutter renders this file with Jinja.
TEMPLATE_MARKERS = tuple("{" + second for second in ("{", "%", "#"))


def template_syntax_problems(answers):
    """Text answers end up inside templates (Django's, on every page): one that holds template
    syntax would run there as code instead of showing as text."""
    found = []
    for field, value in answers.items():
        markers = [marker for marker in TEMPLATE_MARKERS
                   if not field.startswith("_") and isinstance(value, str) and marker in value]
        if markers:
            found.append(f"{field} {value!r} contains {' and '.join(map(repr, markers))}, which "
                         "starts template code in the generated pages: leave it out")
    return found


def problems(answers):
    found = slug_problems(answers["project_slug"], answers["notebooks"], answers["tasks"])
    found += template_syntax_problems(answers)
    for field in ("project_name", "description", "author_name"):
        if not answers[field].strip():
            found.append(f"{field} is empty")
        elif "\n" in answers[field]:
            found.append(f"{field} must be a single line")
    if not EMAIL.match(answers["email"]):
        found.append(f"email {answers['email']!r} is not a well-formed address like name@example.com")
    if not domain_is_well_formed(answers["domain_name"]):
        found.append(f"domain_name {answers['domain_name']!r} is not a well-formed lowercase "
                     "domain like example.com (no scheme, port or path)")
    elif not domain_takes_mail(answers["domain_name"]):
        found.append(f"domain_name {answers['domain_name']!r} has no top-level domain like .com "
                     f"(localhost aside): the site's sender, noreply@{answers['domain_name']}, "
                     "would not be an email address")
    if not timezone_is_known(answers["timezone"]):
        found.append(f"timezone {answers['timezone']!r} is not a time zone that zoneinfo knows "
                     "(use an IANA name such as Europe/Berlin)")
    return found


if __name__ == "__main__":
    found = problems(ANSWERS)
    for problem in found:
        print(f"ERROR: {problem}", file=sys.stderr)
    sys.exit(1 if found else 0)
