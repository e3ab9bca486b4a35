"""The generated project's documentation holds together, for every option combination: a README
a newcomer reads in minutes (at most 150 lines, the first command by line 30), every relative
link and anchor in README.md and docs/*.md leads somewhere, every page of docs/ is linked from
the README, and no comment or help text anywhere names a README section that is not there (or a
docs/ page or heading that is not)."""

import itertools
import re
from pathlib import Path

import pytest

from conftest import QUESTIONS, TEMPLATE, generate

CHOICES = {name: value for name, value in QUESTIONS.items()
           if isinstance(value, list) and not name.startswith("_")}
# Every combination of the yes/no options (what the docs' conditionals read), the other choices
# (the license) taken in turn: 32 projects, not the 96 of the whole product.
SWITCHES = [name for name, value in CHOICES.items() if sorted(value) == ["no", "yes"]]
OTHERS = [name for name in CHOICES if name not in SWITCHES]
COMBINATIONS = [{name: CHOICES[name][number % len(CHOICES[name])] for name in OTHERS}
                | dict(zip(SWITCHES, values, strict=True))
                for number, values in enumerate(itertools.product(
                    *(CHOICES[name] for name in SWITCHES)))]

README_LINES, FIRST_COMMAND_BY = 150, 30
# A section of the README named in a comment or help text: `README: Limits`, `README, "On
# Kubernetes"`, `README's "On Kubernetes"`, `README.md ("IDs")`, `(README)`.
README_SECTION = re.compile(r"""README(?:\.md)?(?::\s|,\s|'s\s+["*]|\s+\(["*]|\))""")
DOCS_REFERENCE = re.compile(r"\bdocs/([\w-]+\.md)(?:#([\w-]+))?")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


@pytest.fixture(scope="module", params=COMBINATIONS,
                ids=lambda answers: "-".join(f"{k}={v}" for k, v in answers.items()))
def project(request, tmp_path_factory):
    return generate(tmp_path_factory.mktemp("docs"), **request.param)


@pytest.fixture(scope="module")
def every_option_project(tmp_path_factory):
    """The project with every page: each option that has one answered yes."""
    return generate(tmp_path_factory.mktemp("every"), **{name: "yes" for name, value in
                                                         CHOICES.items() if "yes" in value})


def anchor(heading):
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def heading_texts(path):
    """A Markdown file's headings, outside code blocks."""
    text = FENCE.sub("", path.read_text())
    return [match.strip() for match in re.findall(r"^#{1,6} +(.+?)#*$", text, re.MULTILINE)]


def headings(path):
    """The anchors of a Markdown file's headings."""
    return {anchor(heading) for heading in heading_texts(path)}


def first_command(lines):
    """The line number of the first line inside a ```sh fence (bench/size.py counts so too)."""
    return next((number + 2 for number, line in enumerate(lines) if line.strip() == "```sh"),
                None)


def relative_links(path):
    text = re.sub(r"`[^`\n]*`", "", FENCE.sub("", path.read_text()))
    return [target for target in LINK.findall(text)
            if not re.match(r"[a-z][a-z+.-]*:", target)]  # http:, https:, mailto:


def test_first_command_and_links_are_found_as_meant():
    assert first_command(["# x", "", "```sh", "make"]) == 4
    assert anchor("On more hosts: Docker Swarm") == "on-more-hosts-docker-swarm"
    assert anchor("Production data, `safely`") == "production-data-safely"
    found = [match.group(0) for match in README_SECTION.finditer(
        'a (README: Limits) b README, "On c README\'s "On d README.md ("IDs") e (README). '
        'f the README has the rest, as the README promises, readme = "README.md"')]
    assert found == ["README: ", "README, ", "README's \"", 'README.md ("', "README)"]


def test_the_readme_is_short_and_starts_with_a_command(project):
    lines = (project / "README.md").read_text().splitlines()
    assert len(lines) <= README_LINES
    assert first_command(lines) is not None and first_command(lines) <= FIRST_COMMAND_BY


def test_every_relative_link_resolves(project):
    documents = [project / "README.md", *sorted((project / "docs").glob("*.md"))]
    broken = []
    for document in documents:
        for target in relative_links(document):
            file, _, fragment = target.partition("#")
            linked = (document.parent / file).resolve() if file else document
            if not linked.exists():
                broken.append(f"{document.relative_to(project)}: {target} (no such file)")
            elif fragment and (linked.suffix != ".md" or fragment not in headings(linked)):
                broken.append(f"{document.relative_to(project)}: {target} (no such heading)")
    assert broken == []


def test_every_docs_page_is_linked_from_the_readme(project):
    linked = {(project / target.partition("#")[0]).resolve()
              for target in relative_links(project / "README.md")}
    pages = set((project / "docs").glob("*.md"))
    assert pages, "docs/ has no page"
    assert sorted(page.name for page in pages if page.resolve() not in linked) == []


def text_files(root):
    for path in sorted(root.rglob("*")):
        # Not .env: its comments come from the hook, checked as the template's own source, and
        # its secrets have no place in a failure message.
        if path.is_file() and path.suffix != ".md" and path.name not in {"uv.lock", ".env"} \
                and ".git" not in path.parts:
            try:
                yield path, path.read_text()
            except UnicodeDecodeError:
                continue


def dangling_references(name, text, project):
    """README sections and docs/ pages or headings that `text` names and `project` lacks."""
    readme = [heading.lower() for heading in heading_texts(project / "README.md")]
    # A reference may be wrapped over lines of a comment or a docstring: read it as one line.
    flat = re.sub(r"\s*\n\s*(?:#+\s*)?", " ", text)
    found = []
    for match in README_SECTION.finditer(flat):
        named = flat[match.end():match.end() + 60].lstrip("\"* ")
        if not any(named.lower().startswith(section) for section in readme):
            found.append(f"{name}: {flat[match.start():match.end() + 40]!r}")
    for match in DOCS_REFERENCE.finditer(flat):
        page, heading = project / "docs" / match[1], match[2]
        if not page.exists() and not (TEMPLATE / "docs" / match[1]).exists():
            found.append(f"{name}: {match[0]} (no such page)")
        elif page.exists() and heading and heading not in headings(page):
            found.append(f"{name}: {match[0]} (no such heading)")
    return found


def test_no_file_names_a_section_that_is_not_there(project):
    found = [reference for path, text in text_files(project)
             for reference in dangling_references(path.relative_to(project), text, project)]
    assert found == []


def test_the_templates_own_prompts_hooks_and_tests_name_existing_sections(every_option_project):
    sources = [TEMPLATE / "cookiecutter.json", *sorted((TEMPLATE / "hooks").glob("*.py")),
               *sorted(path for path in (TEMPLATE / "tests").glob("*.py")
                       if path.name != Path(__file__).name)]
    found = [reference for path in sources for reference in dangling_references(
        path.relative_to(TEMPLATE), path.read_text(), every_option_project)]
    assert found == []
