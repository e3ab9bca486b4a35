"""Every `--checkout REF` the documentation names resolves in this repository: a README that
recommends a release tag nobody pushed gives every newcomer a command that fails."""

import re
import subprocess

from conftest import TEMPLATE, generate


def named_refs(text):
    """The refs after --checkout, but for placeholders such as <commit>."""
    refs = (match.strip("`'\".,;:)") for match in re.findall(r"--checkout\s+(\S+)", text))
    return [ref for ref in refs if not ref.startswith("<")]


def test_every_checkout_the_docs_name_resolves_here(tmp_path):
    project = generate(tmp_path)
    documents = {"README.md": TEMPLATE / "README.md", "CHANGELOG.md": TEMPLATE / "CHANGELOG.md",
                 "the generated README.md": project / "README.md",
                 **{f"the generated docs/{page.name}": page
                    for page in sorted((project / "docs").glob("*.md"))}}
    assert "the generated docs/updates.md" in documents  # where the cruft commands are
    named = {(where, ref) for where, path in documents.items()
             for ref in named_refs(path.read_text())}
    unresolved = sorted((where, ref) for where, ref in named if subprocess.run(
        ["git", "rev-parse", "--quiet", "--verify", f"{ref}^{{commit}}"], cwd=TEMPLATE,
        capture_output=True, check=False).returncode != 0)
    assert unresolved == []


def test_placeholders_are_told_apart_from_refs():
    text = "cruft create URL --checkout 2026.11.0   # x\n`cruft link URL --checkout <commit>`"
    assert named_refs(text) == ["2026.11.0"]
