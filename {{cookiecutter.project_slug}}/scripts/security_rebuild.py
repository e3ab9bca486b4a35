"""Decide whether the production image needs a security rebuild, and rebuild it when it does.

    python scripts/security_rebuild.py check   --image ghcr.io/org/app:latest
    python scripts/security_rebuild.py rebuild --image ghcr.io/org/app:latest [--push] [--force]
    python scripts/security_rebuild.py diff OLD_IMAGE NEW_IMAGE
    python scripts/security_rebuild.py labels     # the base image labels for the Dockerfile as is

A rebuild is due when one of these holds for the published image (--image; pulled first):
  - its base image moved: the tag the Dockerfile's target stage starts from (python:3.13-slim)
    now has another digest than the one in the image's label org.opencontainers.image.base.digest
    (or the image has no such label, or there is no published image yet);
  - its OS packages have pending upgrades: apt, run inside a throwaway container of the image;
  - a locked Python dependency (uv.lock) has a known vulnerability: pip-audit through uvx. It
    needs PyPI and the vulnerability database; when they cannot be reached it says so and the
    other checks still decide. --no-audit skips it.

`rebuild` moves the Dockerfile's base image pins forward (scripts/pin_base_images.py), builds the
target stage with --pull --no-cache, labels the image with its base image's name and digest and
its build date (OCI labels), tags it IMAGE:YYYY-MM-DD and IMAGE:latest, and prints the base digest
before and after and the OS and Python packages that changed. --push pushes both tags; CI pushes
with docker/build-push-action instead, for the SBOM and provenance. Nothing is built when no
rebuild is due. Under GitHub Actions the results also go to $GITHUB_OUTPUT and the job summary.

Docker Hub base images are resolved at --registry (default: $BASE_IMAGE_REGISTRY or Docker Hub's
API). Needs Docker with Buildx and Python 3.10 or later (standard library only). Exit status:
0 done (due or not), 1 the build or push failed, 2 bad input (unknown image, unreachable
registry...).
"""

import argparse
import dataclasses
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from pin_base_images import RegistryError, Registry, base_of, parse_reference, pin_file

PROJECT = Path(__file__).resolve().parent.parent
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
CREATED = "org.opencontainers.image.created"

# Run inside the image as root: refresh the package lists, then list what an upgrade would install.
# The same upgrade the Dockerfile runs (upgrade --with-new-pkgs): what a rebuild would install.
APT_PENDING = """
command -v apt-get >/dev/null 2>&1 || { echo NO-APT; exit 0; }
if ! apt-get update -qq -o APT::Update::Error-Mode=any >/tmp/apt-update.log 2>&1; then
  echo UPDATE-FAILED; cat /tmp/apt-update.log; exit 0
fi
apt-get --simulate --with-new-pkgs upgrade
"""
# Run with the image's Python: every installed distribution in every site-packages on the disk,
# so that a virtual environment outside sys.path (/app/.venv) is listed too.
PYTHON_PACKAGES = """
import json, os
from importlib import metadata
found = set()
for top in ("/usr", "/opt", "/app", "/srv", "/home", "/root", "/venv", "/code"):
    for root, dirs, _ in os.walk(top):
        for name in [d for d in dirs if d in ("site-packages", "dist-packages")]:
            dirs.remove(name)
            for dist in metadata.distributions(path=[os.path.join(root, name)]):
                found.add((dist.metadata["Name"] or "?", dist.version))
print(json.dumps(sorted(found)))
"""


class Failure(Exception):
    """Stops the command with this message and exit status 2 (bad input)."""

    status = 2


class BuildFailure(Failure):
    """The build or the push failed: exit status 1."""

    status = 1


def say(message=""):
    print(message, flush=True)


# --- docker ---

def docker(*arguments, timeout=None):
    try:
        return subprocess.run(["docker", *arguments], text=True, capture_output=True,
                              timeout=timeout, check=False)
    except FileNotFoundError:
        raise Failure("docker not found: install Docker (with Buildx) to run this script") from None


def inspect(image):
    """`docker image inspect` of a local image, or None."""
    result = docker("image", "inspect", image)
    return json.loads(result.stdout)[0] if result.returncode == 0 else None


def labels_of(details):
    return (details.get("Config") or {}).get("Labels") or {}


def published_image(reference):
    """Pull the published image and return its details, or None (with why) if there is none."""
    result = docker("pull", "--quiet", reference, timeout=600)
    if result.returncode == 0:
        return inspect(reference), None
    error = (result.stderr.strip().splitlines() or ["docker pull failed"])[-1]
    details = inspect(reference)
    if details:
        say(f"Could not pull {reference} ({error}); using the local copy.")
        return details, None
    return None, error


def run_in(image, entrypoint, *arguments):
    return docker("run", "--rm", "--pull", "never", "--user", "0", "--entrypoint", entrypoint,
                  image, *arguments, timeout=600)


def os_packages(image):
    result = run_in(image, "dpkg-query", "-W", "-f", "${Package}\t${Version}\n")
    if result.returncode != 0:
        return None
    return dict(line.split("\t", 1) for line in result.stdout.splitlines() if "\t" in line)


def python_packages(image):
    for python in ("python3", "python"):
        result = run_in(image, python, "-c", PYTHON_PACKAGES)
        if result.returncode == 0:
            packages = {}
            for name, version in json.loads(result.stdout):
                key = re.sub(r"[-_.]+", "-", name).lower()
                packages[key] = ", ".join(filter(None, [packages.get(key), version]))
            return packages
    return None


@dataclasses.dataclass
class Upgrade:
    package: str
    installed: str | None  # None: a new package the upgrade pulls in
    candidate: str
    origin: str

    def __str__(self):
        if self.installed is None:
            return f"{self.package} (new) {self.candidate} from {self.origin}"
        return f"{self.package} {self.installed} -> {self.candidate} from {self.origin}"


def pending_upgrades(image):
    """(upgrades, None), or (None, why they could not be listed)."""
    result = run_in(image, "sh", "-c", APT_PENDING)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0:
        return None, f"docker run failed: {(result.stderr.strip().splitlines() or ['?'])[-1]}"
    if lines[:1] == ["NO-APT"]:
        return None, "the image has no apt-get"
    if lines[:1] == ["UPDATE-FAILED"]:
        return None, "apt-get update failed: " + " / ".join(lines[1:4])
    upgrades = []
    for line in lines:
        match = re.match(r"^Inst (\S+) (?:\[([^\]]+)\] )?\((\S+) (.*?)(?: \[[^\]]*\])?\)", line)
        if match:
            upgrades.append(Upgrade(match[1], match[2], match[3], match[4]))
    return upgrades, None


# --- Python dependencies ---

def vulnerable_dependencies(project):
    """([(package, version, [ids], [fixed in])], None), or (None, why the audit did not run)."""
    uv = shutil.which("uv")
    if not uv:
        return None, "uv not found (install uv to audit uv.lock)"
    export = subprocess.run([uv, "export", "--locked", "--no-default-groups", "--no-emit-project",
                             "--format", "requirements-txt", "--quiet"],
                            cwd=project, text=True, capture_output=True, check=False)
    if export.returncode != 0:
        return None, f"uv export failed: {export.stderr.strip()[-300:]}"
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as requirements:
        requirements.write(export.stdout)
    try:
        audit = subprocess.run([uv, "tool", "run", "pip-audit", "--disable-pip",
                                "--requirement", requirements.name, "--format", "json",
                                "--progress-spinner", "off"],
                               cwd=project, text=True, capture_output=True, check=False,
                               timeout=900)
    except subprocess.TimeoutExpired:
        return None, "pip-audit took longer than 15 minutes"
    finally:
        os.unlink(requirements.name)
    try:
        report = json.loads(audit.stdout)
    except ValueError:
        report = None
    if audit.returncode not in (0, 1) or not isinstance(report, dict):
        tail = " / ".join(audit.stderr.strip().splitlines()[-3:])
        return None, (f"pip-audit could not run (it needs PyPI and the vulnerability database; "
                      f"offline?): {tail or 'exit status ' + str(audit.returncode)}")
    return audit_findings(report)


def audit_findings(report):
    """The vulnerable packages in pip-audit's JSON report, as vulnerable_dependencies returns."""
    found, skipped = [], []
    dependencies = report.get("dependencies", [])
    for dependency in dependencies:
        vulns = dependency.get("vulns") or []
        if "skip_reason" in dependency:
            skipped.append(dependency["skip_reason"])
        elif vulns:
            found.append((dependency["name"], dependency.get("version", "?"),
                          [v["id"] for v in vulns],
                          sorted({f for v in vulns for f in v.get("fix_versions", [])})))
    # pip-audit skips what its vulnerability service does not answer for, and says so only here.
    if skipped and not found:
        return None, (f"pip-audit could not audit {len(skipped)} of {len(dependencies)} "
                      f"dependencies (vulnerability service unreachable?): {skipped[0]}")
    return found, None


# --- the decision ---

@dataclasses.dataclass
class Decision:
    base: object  # Reference of the target stage's base image, as the Dockerfile has it
    current_digest: str  # what the registry serves for the base image's tag now
    published: dict | None  # `docker image inspect` of the published image
    reasons: list = dataclasses.field(default_factory=list)  # why a rebuild is due
    checked: list = dataclasses.field(default_factory=list)  # checks that found nothing
    notes: list = dataclasses.field(default_factory=list)  # checks that could not run

    @property
    def due(self):
        return bool(self.reasons)

    @property
    def published_base(self):
        """(reference, digest) of the base the published image records in its labels."""
        labels = labels_of(self.published or {})
        try:
            reference = parse_reference(labels[BASE_NAME]) if BASE_NAME in labels else None
        except RegistryError:
            reference = None
        # A base name label that carries a digest (python:3.13-slim@sha256:...) serves as well.
        return reference, labels.get(BASE_DIGEST) or (reference and reference.digest)

    @property
    def published_digest(self):
        return self.published_base[1]


def decide(arguments, registry):
    dockerfile = arguments.project / arguments.dockerfile
    try:
        base = base_of(dockerfile.read_text(), arguments.target)
    except OSError as error:
        raise Failure(f"cannot read {dockerfile}: {error.strerror}") from None
    current = registry.digest(base)
    say(f"Base image of the {arguments.target or 'last'} stage: {base.canonical}")
    say(f"  the registry serves {current} for it now")
    if base.digest and base.digest != current:
        say(f"  the Dockerfile pins {base.digest}: a rebuild moves the pin forward")
    say(f"Published image: {arguments.image}")
    published, why_none = published_image(arguments.image)
    decision = Decision(base, current, published)
    if arguments.force:
        decision.reasons.append("forced (--force)")
    if published is None:
        decision.reasons.append(f"there is no published image {arguments.image} to check "
                                f"({why_none})")
        return decision
    labels = labels_of(published)
    say(f"  built on {labels.get(BASE_NAME, '(no base name label)')} "
        f"{labels.get(BASE_DIGEST, '(no base digest label)')}, "
        f"created {labels.get(CREATED, '(no date label)')}")
    check_base(decision)
    check_os_packages(decision, arguments.image)
    if arguments.audit:
        check_python_dependencies(decision, arguments.project)
    else:
        decision.notes.append("Python vulnerability check skipped (--no-audit)")
    return decision


def check_base(decision):
    base, current = decision.base, decision.current_digest
    recorded, recorded_digest = decision.published_base
    if not recorded_digest:
        decision.reasons.append(f"the published image has no {BASE_DIGEST} label, so its base "
                                "cannot be compared")
    elif recorded and recorded.canonical != base.canonical:
        decision.reasons.append(f"the base image changed from {recorded.canonical} to "
                                f"{base.canonical}")
    elif recorded_digest != current:
        decision.reasons.append(f"the base image {base.tagged} moved: "
                                f"{recorded_digest} -> {current}")
    else:
        decision.checked.append(f"the base image is unchanged ({current})")


def check_os_packages(decision, image):
    upgrades, why_not = pending_upgrades(image)
    if upgrades:
        decision.reasons.append(f"{len(upgrades)} OS package(s) in the published image have "
                                "pending upgrades:\n" + "\n".join(f"      {u}" for u in upgrades))
    elif why_not:
        decision.notes.append(f"OS package check skipped: {why_not}")
    else:
        decision.checked.append("no OS package has a pending upgrade")


def check_python_dependencies(decision, project):
    vulnerable, why_not = vulnerable_dependencies(project)
    if vulnerable:
        decision.reasons.append(
            f"{len(vulnerable)} locked Python dependency(ies) have known vulnerabilities "
            "(a rebuild ships the uv.lock of this branch; update the lock to fix them, "
            "Dependabot's uv updates propose it):\n" + "\n".join(
                f"      {name} {version}: {', '.join(ids)}"
                f" (fixed in {', '.join(fixes) or 'no release yet'})"
                for name, version, ids, fixes in vulnerable))
    elif why_not:
        decision.notes.append(f"Python vulnerability check skipped: {why_not}")
    else:
        decision.checked.append("no locked Python dependency has a known vulnerability")


def report(decision):
    for note in decision.notes:
        say(f"Note: {note}")
    if decision.due:
        say("Rebuild due:")
        for reason in decision.reasons:
            say(f"  - {reason}")
    else:
        say(f"No rebuild due: {'; '.join(decision.checked)}.")


# --- the rebuild ---

def diff(old, new):
    """Lines describing what changed from one {package: version} to another."""
    lines = []
    for name in sorted(set(old) | set(new)):
        if name not in new:
            lines.append(f"  - {name} {old[name]}")
        elif name not in old:
            lines.append(f"  + {name} {new[name]}")
        elif old[name] != new[name]:
            lines.append(f"  ~ {name} {old[name]} -> {new[name]}")
    return lines or ["  (no changes)"]


def package_changes(old_image, new_image):
    lines = []
    for kind, listing in (("OS packages (dpkg)", os_packages), ("Python packages", python_packages)):
        new = listing(new_image)
        old = listing(old_image) if old_image else {}
        if new is None or old is None:
            lines += [f"{kind}: cannot be listed in {'the new' if new is None else 'the old'} "
                      "image"]
            continue
        if old_image:
            lines += [f"{kind} changed from the published image to the new one:", *diff(old, new)]
        else:
            lines.append(f"{kind}: {len(new)} in the new image (first build: nothing to compare)")
    return lines


def rebuild(arguments, registry, decision):
    dockerfile = arguments.project / arguments.dockerfile
    for pin in pin_file(dockerfile, registry):
        say(f"Pin: {pin}")
    base = base_of(dockerfile.read_text(), arguments.target)
    built_at = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    labels = {
        BASE_NAME: base.canonical,
        BASE_DIGEST: base.digest,
        CREATED: built_at.isoformat().replace("+00:00", "Z"),
    }
    repository = parse_reference(arguments.image).name
    tags = [f"{repository}:{built_at:%Y-%m-%d}", f"{repository}:latest"]
    seconds = build(arguments, labels, tags)
    lines = [f"Base image digest: before {decision.published_digest or '(none)'}, "
             f"after {base.digest}",
             *package_changes((decision.published or {}).get("Id"), tags[0])]
    upgrades, _ = pending_upgrades(tags[0])
    if upgrades:
        lines.append(f"Note: {len(upgrades)} OS package(s) still have pending upgrades in the new "
                     "image (published while it was built, or held back by apt): "
                     + ", ".join(u.package for u in upgrades))
    for line in lines:
        say(line)
    github_summary(f"Security rebuild: {tags[0]}", "\n".join(lines))
    if arguments.push:
        push(tags)
    return {"image": tags[0], "tags": "\n".join(tags),
            "labels": "\n".join(f"{k}={v}" for k, v in labels.items()),
            "base-digest": base.digest, "seconds": f"{seconds:.0f}"}


def build(arguments, labels, tags):
    """docker buildx build --pull --no-cache of the target stage; return the seconds it took."""
    command = ["docker", "buildx", "build", "--pull", "--no-cache", "--load",
               "--file", str(arguments.project / arguments.dockerfile)]
    if arguments.target:
        command += ["--target", arguments.target]
    for name, value in labels.items():
        command += ["--label", f"{name}={value}"]
    for tag in tags:
        command += ["--tag", tag]
    command.append(str(arguments.project))
    say(f"Building {', '.join(tags)}: {' '.join(command)}")
    started = time.monotonic()
    result = subprocess.run(command, check=False)
    seconds = time.monotonic() - started
    if result.returncode != 0:
        raise BuildFailure(f"the build failed (docker buildx build exited {result.returncode})")
    say(f"Built in {seconds:.0f} s.")
    return seconds


def push(tags):
    for tag in tags:
        pushed = docker("push", "--quiet", tag, timeout=1800)
        if pushed.returncode != 0:
            raise BuildFailure(f"docker push {tag} failed: {pushed.stderr.strip()}")
        say(f"Pushed {tag}")


# --- GitHub Actions ---

def github_output(values):
    path = os.environ.get("GITHUB_OUTPUT")
    if not path:
        return
    with open(path, "a") as output:
        for name, value in values.items():
            delimiter = f"EOF_{uuid.uuid4().hex}"
            output.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def github_summary(title, text):
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a") as summary:
            summary.write(f"### {title}\n\n```text\n{text}\n```\n")


# --- command line ---

def parse_arguments(argv):
    parser = argparse.ArgumentParser(
        prog="security_rebuild.py", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    commands = parser.add_subparsers(dest="command", required=True)
    for name, text in (("check", "say whether a rebuild is due; build nothing"),
                       ("rebuild", "rebuild the image if a rebuild is due")):
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--image", default=os.environ.get("IMAGE"), required=not os.environ
                             .get("IMAGE"), help="the published image, e.g. "
                             "ghcr.io/org/app:latest (default: $IMAGE)")
        command.add_argument("--registry", help="where Docker Hub base images are resolved "
                             "(default: $BASE_IMAGE_REGISTRY or Docker Hub)")
        command.add_argument("--project", type=Path, default=PROJECT,
                             help="the project (build context); default: this script's project")
        command.add_argument("--dockerfile", default="Dockerfile",
                             help="relative to the project (default: Dockerfile)")
        command.add_argument("--target", default="prod", help="the stage to build (default: prod)")
        command.add_argument("--no-audit", dest="audit", action="store_false",
                             help="skip the Python vulnerability check (pip-audit)")
        command.add_argument("--force", action="store_true", help="rebuild even if not due")
        if name == "rebuild":
            command.add_argument("--push", action="store_true", help="push the new tags")
    compare = commands.add_parser("diff", help="the package changes between two local images")
    compare.add_argument("old")
    compare.add_argument("new")
    labels = commands.add_parser("labels", help="the base image labels (name, digest) for the "
                                 "Dockerfile as it is: its pin, else the tag's current digest")
    labels.add_argument("--registry", help="where Docker Hub base images are resolved")
    labels.add_argument("--project", type=Path, default=PROJECT)
    labels.add_argument("--dockerfile", default="Dockerfile")
    labels.add_argument("--target", default="prod")
    return parser.parse_args(argv)


def base_labels(arguments):
    dockerfile = arguments.project / arguments.dockerfile
    try:
        base = base_of(dockerfile.read_text(), arguments.target)
    except OSError as error:
        raise Failure(f"cannot read {dockerfile}: {error.strerror}") from None
    digest = base.digest or Registry(arguments.registry).digest(base)
    return {BASE_NAME: base.canonical, BASE_DIGEST: digest}


def main(argv=None):
    arguments = parse_arguments(argv)
    try:
        if arguments.command == "diff":
            for image in (arguments.old, arguments.new):
                if not inspect(image):
                    raise Failure(f"unknown image: {image} is not in the local Docker engine")
            for line in package_changes(arguments.old, arguments.new):
                say(line)
            return 0
        if arguments.command == "labels":
            labels = "\n".join(f"{k}={v}" for k, v in base_labels(arguments).items())
            say(labels)
            github_output({"labels": labels})
            return 0
        registry = Registry(arguments.registry)
        arguments.project = arguments.project.resolve()
        decision = decide(arguments, registry)
        report(decision)
        outputs = {"due": str(decision.due).lower(),
                   "reasons": "\n".join(decision.reasons) or "none"}
        github_summary("Security rebuild: decision", "\n".join(
            decision.reasons or ["No rebuild due."]) + "\n" + "\n".join(decision.notes))
        if arguments.command == "rebuild" and decision.due:
            outputs |= rebuild(arguments, registry, decision)
        elif arguments.command == "rebuild":
            say("Nothing built.")
        github_output(outputs)
        return 0
    except (Failure, RegistryError) as error:
        print(f"security_rebuild: {error}", file=sys.stderr)
        return getattr(error, "status", 2)


if __name__ == "__main__":
    sys.exit(main())
