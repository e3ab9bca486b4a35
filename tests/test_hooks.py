"""The hooks: bad answers are refused before anything is written; secrets are generated."""

import subprocess
import sys

import pytest

from conftest import QUESTIONS, TEMPLATE, generate, option_combinations, pairwise

REFUSED = [
    ({"project_slug": "My-Project"}, "project_slug 'My-Project' is not a lowercase Python identifier"),
    ({"project_slug": "2fast"}, "project_slug '2fast' is not a lowercase Python identifier"),
    ({"project_slug": "_private"}, "project_slug '_private' is not a lowercase Python identifier"),
    ({"project_slug": "café"}, "project_slug 'café' is not a lowercase Python identifier"),
    ({"project_slug": "class"}, "project_slug 'class' is a Python keyword"),
    ({"project_slug": "match"}, "project_slug 'match' is a Python keyword"),
    ({"project_slug": "django"}, "project_slug 'django' would shadow the module 'django'"),
    ({"project_slug": "config"}, "project_slug 'config' would shadow the module 'config'"),
    ({"project_slug": "shortuuid"}, "project_slug 'shortuuid' would shadow the module 'shortuuid'"),
    ({"project_slug": "test"}, "project_slug 'test' would shadow the module 'test'"),
    ({"project_slug": "site"}, "project_slug 'site' would shadow the module 'site'"),
    ({"project_slug": "tests"}, "project_slug 'tests' would shadow the module 'tests'"),
    ({"project_slug": "notebooks"}, "project_slug 'notebooks' would shadow the module 'notebooks'"),
    ({"project_slug": "pandas"}, "project_slug 'pandas' would shadow the module 'pandas'"),
    ({"project_slug": "cronsim", "tasks": "yes"},
     "project_slug 'cronsim' would shadow the module 'cronsim'"),
    ({"project_slug": "django_tasks_db", "tasks": "yes"},
     "project_slug 'django_tasks_db' would shadow the module 'django_tasks_db'"),
    ({"project_name": "  ", "project_slug": "blank"}, "project_name is empty"),
    ({"description": "one\ntwo"}, "description must be a single line"),
    ({"email": "jane"}, "email 'jane' is not a well-formed address"),
    ({"email": "jane@example"}, "email 'jane@example' is not a well-formed address"),
    ({"email": "jane doe@example.com"}, "email 'jane doe@example.com' is not a well-formed address"),
    ({"domain_name": "https://example.com"}, "domain_name 'https://example.com' is not a well-formed"),
    ({"domain_name": "example.com/app"}, "domain_name 'example.com/app' is not a well-formed"),
    ({"domain_name": "-bad.example.com"}, "domain_name '-bad.example.com' is not a well-formed"),
    ({"domain_name": "Example.com"}, "domain_name 'Example.com' is not a well-formed lowercase"),
    ({"domain_name": "example..com"}, "domain_name 'example..com' is not a well-formed"),
    ({"domain_name": "intranet"}, "domain_name 'intranet' has no top-level domain like .com"),
    ({"domain_name": "10.0.0.1"}, "domain_name '10.0.0.1' has no top-level domain like .com"),
    ({"domain_name": "example.c"}, "domain_name 'example.c' has no top-level domain like .com"),
    ({"timezone": "Mars/Olympus_Mons"}, "timezone 'Mars/Olympus_Mons' is not a time zone"),
    ({"timezone": "../../etc/passwd"}, "timezone '../../etc/passwd' is not a time zone"),
    ({"timezone": ""}, "timezone '' is not a time zone"),
]


def cookiecutter_cli(output_dir, answers):
    arguments = [f"{name}={value}" for name, value in answers.items()]
    return subprocess.run(
        [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(output_dir),
         *arguments], text=True, capture_output=True, check=False)


@pytest.mark.parametrize(("answers", "message"), REFUSED, ids=[m for _, m in REFUSED])
def test_a_bad_answer_is_refused_and_nothing_is_written(tmp_path, answers, message):
    result = cookiecutter_cli(tmp_path, answers)
    assert result.returncode != 0
    assert f"ERROR: {message}" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_every_problem_is_reported_at_once(tmp_path):
    result = cookiecutter_cli(tmp_path, {"project_slug": "import", "email": "nobody",
                                         "domain_name": "a b", "timezone": "Nowhere/City"})
    errors = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert [error.split()[1] for error in errors] == ["project_slug", "email", "domain_name",
                                                      "timezone"]
    assert list(tmp_path.iterdir()) == []


def test_good_unusual_answers_are_accepted(tmp_path):
    project = generate(tmp_path, project_name="Zoë's Shop", project_slug="zoe_shop",
                       email="o'brien+shop@x-y.example.museum", domain_name="localhost",
                       timezone="America/Argentina/Buenos_Aires")
    assert (project / "zoe_shop" / "models.py").exists()


def test_each_generation_gets_its_own_secrets(tmp_path):
    first = generate(tmp_path / "a") / ".env"
    second = generate(tmp_path / "b") / ".env"
    assert first.read_text() != second.read_text()


def test_pairwise_covers_every_pair_of_choices():
    options = {"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [True, False], "d": ["p", "q"]}
    chosen = pairwise(options)
    for first, second in [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]:
        pairs = {(combination[first], combination[second]) for combination in chosen}
        assert len(pairs) == len(options[first]) * len(options[second])
    assert len(chosen) < 3 * 3 * 2 * 2


def test_the_combinations_include_the_project_with_every_option_no():
    switches = [name for name, value in QUESTIONS.items()
                if isinstance(value, list) and "no" in value]
    assert {"notebooks", "ipfs", "tasks", "kubernetes", "swarm"} <= set(switches)
    assert any(all(answers[name] == "no" for name in switches)
               for answers in option_combinations())


def test_few_choices_are_all_combined():
    questions = {"project_name": "x", "license": ["MIT", "BSD-3-Clause", "Proprietary"]}
    assert [c["license"] for c in option_combinations(questions)] == questions["license"]


@pytest.mark.parametrize(("field", "text"), [
    ("project_name", "Shop {{ request.user.password }}"),
    ("project_name", "Shop {% debug %}"),
    ("description", "Notes {# and more"),
    ("author_name", "Jane {{ 7|add:1 }} Doe"),
])
def test_an_answer_with_template_code_is_refused(tmp_path, field, text):
    # Answers given on the command line are rendered by cookiecutter (Jinja) before the hook
    # sees them: `raw` passes the text through as typed at the prompt.
    result = cookiecutter_cli(tmp_path, {field: f"{{% raw %}}{text}{{% endraw %}}",
                                         "project_slug": "shop"})
    assert result.returncode != 0
    marker = next(marker for marker in ("{{", "{%", "{#") if marker in text)
    assert f"ERROR: {field} {text!r} contains {marker!r}, which starts template code in the " \
           "generated pages: leave it out" in result.stderr, result.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_an_answer_typed_at_the_prompt_with_template_code_is_refused(tmp_path):
    # At the prompt nothing is rendered: the text reaches the hook as typed.
    result = subprocess.run(
        [sys.executable, "-m", "cookiecutter", str(TEMPLATE), "-o", str(tmp_path)],
        input="Shop {{ request }}\nshop\n" + "\n" * 20, text=True, capture_output=True,
        check=False)
    assert result.returncode != 0
    assert "ERROR: project_name 'Shop {{ request }}' contains '{{'" in result.stderr
    assert list(tmp_path.iterdir()) == []
