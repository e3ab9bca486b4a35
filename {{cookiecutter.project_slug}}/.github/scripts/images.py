"""The production image's base images: pin them, and rebuild the image when security asks.

    python .github/scripts/images.py pin [--check] [--unpinned-only] [FILE...]
    python .github/scripts/images.py check   --image ghcr.io/org/app:latest [--no-audit]
    python .github/scripts/images.py rebuild --image ghcr.io/org/app:latest [--push] [--force]
                                     [--label NAME=VALUE...]
    python .github/scripts/images.py diff OLD_IMAGE NEW_IMAGE  # package changes between two images
    python .github/scripts/images.py labels  # the base image labels for the Dockerfile as it is

docs/ci.md says what each does. Needs Docker (with Buildx and Compose,
which answer for registries and compose files), Python 3.10+, and uv for pip-audit. Exit status:
0 done (due or not), 1 pins due (pin --check) or the build or push failed, 2 an error.
"""

import argparse
import datetime
import functools
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]
DOCKERFILE, TARGET = PROJECT / "Dockerfile", "prod"
# The compose files that name base images{% if cookiecutter.swarm == "yes" %} (deploy/swarm.yaml takes deploy/compose.yaml's){% endif %}.
COMPOSE_FILES = [PROJECT / "compose.yaml", PROJECT / "deploy/compose.yaml"]
FROM = re.compile(r"^(\s*FROM\s+(?:--\S+\s+)*)(\S+)(.*)$", re.IGNORECASE | re.MULTILINE)
IMAGE = re.compile(r"""^(\s*(?:-\s+)?image:\s*["']?)([^"'\s#]+)""", re.MULTILINE)
NAME, DIGEST = "org.opencontainers.image.base.name", "org.opencontainers.image.base.digest"
# The upgrade the Dockerfile runs (--with-new-pkgs), simulated: what a rebuild would install.
APT = ("apt-get update -qq -o APT::Update::Error-Mode=any >/dev/null"
       " && apt-get --simulate --with-new-pkgs upgrade")
UPGRADE = re.compile(r"^Inst (\S+) (?:\[(\S+)\] )?\((\S+) ([^\[)]*)", re.MULTILINE)
PYTHON = ("from importlib.metadata import distributions\n"
          "for d in distributions(): print(d.name, d.version, sep='\\t')")


class Failure(Exception):
    status = 2  # it stops the command: its message goes to stderr, this is the exit status


class Failed(Failure):
    status = 1  # pins are due (pin --check), or the build or the push failed


def docker(*arguments, check=True, timeout=1800):
    """Run docker; with check, a failure raises Failure with docker's last error line."""
    try:
        result = subprocess.run(["docker", *arguments], text=True, capture_output=True,
                                timeout=timeout, check=False)
    except FileNotFoundError:
        raise Failure("docker not found: install Docker (with Buildx and Compose)") from None
    if check and result.returncode:
        raise Failure(f"docker {arguments[0]} {arguments[1]} failed: {last_line(result.stderr)}")
    return result


def last_line(text):
    return (text.strip().splitlines() or ["(no message)"])[-1].removeprefix("ERROR: ")


def canonical(image):
    """Name and tag in full, no digest: python:3.13-slim -> docker.io/library/python:3.13-slim."""
    name = image.split("@")[0]
    first, _, rest = name.partition("/")
    if not rest or not ("." in first or ":" in first or first == "localhost"):
        name = "docker.io/" + ("library/" if not rest else "") + name
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


@functools.cache
def digest(image):
    """The digest the registry serves for the image's tag now."""
    name, mirror = canonical(image), os.environ.get("BASE_IMAGE_REGISTRY", "")
    if mirror and name.startswith("docker.io/"):
        name = re.sub(r"^\w+://", "", mirror).rstrip("/") + name.removeprefix("docker.io")
    result = docker("buildx", "imagetools", "inspect", name, check=False, timeout=120)
    if result.returncode:
        raise Failure(f"cannot resolve {image} at {name.split('/')[0]}: {last_line(result.stderr)}")
    return re.search(r"^Digest:\s+(sha256:\S+)", result.stdout, re.MULTILINE)[1]


def stages(text):
    """(match, stage name) for every FROM line of a Dockerfile."""
    return [(match, (re.findall(r"^\s+AS\s+(\S+)", match[3], re.IGNORECASE) or [None])[0])
            for match in FROM.finditer(text)]


def base_image(dockerfile, target):
    """The image (as written) that the target stage is built on, following earlier stages."""
    named = {(name or "").lower(): match[2] for match, name in stages(dockerfile.read_text())}
    if target.lower() not in named:
        raise Failure(f"{dockerfile.name} has no stage named {target!r}")
    image = named[target.lower()]
    while image.lower() in named and named[image.lower()] != image:
        image = named[image.lower()]
    if "$" in image or image.lower() == "scratch":
        raise Failure(f"the {target} stage starts from {image}, which has no digest to resolve")
    return image


def references(path, text):
    """The matches of the base images a Dockerfile or compose file names, as pinning sees them."""
    if path.suffix in (".yaml", ".yml"):
        config = docker("compose", "--file", str(path), "config", "--no-interpolate",
                        "--format", "json").stdout
        built = {service.get("image") for service in json.loads(config)["services"].values()
                 if "build" in service}
        found = [match for match in IMAGE.finditer(text) if match[2] not in built]
    else:
        earlier, found = {"scratch"}, []
        for match, name in stages(text):
            found += [match] if match[2].lower() not in earlier else []
            earlier.add((name or "").lower())
    return [match for match in found if "$" not in match[2]]


def pin(path, check=False, unpinned_only=False):
    """Pin the base images of one file (unless check); return how many pins are missing or behind."""
    text, pieces, end, due = path.read_text(), [], 0, 0
    for match in references(path, text):
        name, _, old = match[2].partition("@")
        if old and (unpinned_only or ":" not in name.rsplit("/", 1)[-1]):
            continue  # kept as it is (--unpinned-only), or a digest without a tag to move it
        new = digest(name)
        state = ("already pinned to the current" if old == new else f"{old} ->" if old else
                 "not pinned; its tag is at" if check else "pinned to")
        print(f"{path.name}:{text.count(chr(10), 0, match.start()) + 1}: {name} {state} {new}")
        pieces += [text[end:match.start(2)], f"{name}@{new}"]
        end, due = match.end(2), due + (old != new)
    if due and not check:
        path.write_text("".join(pieces) + text[end:])
    return due


def run_in(image, *command):
    return docker("run", "--rm", "--pull", "never", "--user", "0", "--entrypoint", command[0],
                  image, *command[1:], check=False)


def changes(old_image, new_image):
    """Lines naming the OS and Python packages the new image added (+), removed (-), changed (~)."""
    lines = []
    for kind, command in (("OS packages (dpkg)", ["dpkg-query", "-W"]),
                          ("Python packages", ["python", "-c", PYTHON])):
        old, new = (run_in(image, *command) for image in (old_image, new_image))
        if old.returncode or new.returncode:
            lines.append(f"{kind}: cannot be listed ({last_line(old.stderr + new.stderr)})")
            continue
        old, new = ({name: version for line in image.stdout.splitlines()
                     for name, _, version in [line.partition("\t")]} for image in (old, new))
        lines.append(f"{kind} changed from {old_image} to {new_image}:")
        lines += [f"  - {name} {old[name]}" if name not in new else
                  f"  + {name} {new[name]}" if name not in old else
                  f"  ~ {name} {old[name]} -> {new[name]}"
                  for name in sorted(old.keys() | new.keys()) if old.get(name) != new.get(name)]
    return lines


def listing(lines):
    return ":" + "".join(f"\n      {line}" for line in lines)


# Each check answers ("due", why a rebuild is due), ("ok", what it found) or ("note", why not).
def os_check(image):
    result = run_in(image, "sh", "-c", APT)
    upgrades = [f"{name} {old or '(new)'} -> {new} from {origin.strip()}"
                for name, old, new, origin in UPGRADE.findall(result.stdout)]
    if result.returncode:
        return "note", f"OS package check skipped: apt failed: {last_line(result.stderr)}"
    if upgrades:
        return "due", f"{len(upgrades)} OS package(s) have pending upgrades" + listing(upgrades)
    return "ok", "no OS package has a pending upgrade"


def python_check():
    skipped = "Python vulnerability check skipped: "
    with tempfile.TemporaryDirectory() as directory:
        requirements = os.path.join(directory, "requirements.txt")
        try:
            subprocess.run(["uv", "export", "--locked", "--no-default-groups", "--no-emit-project",
                            "--quiet", "--output-file", requirements], cwd=PROJECT, check=True,
                           capture_output=True)
            audit = subprocess.run(["uv", "tool", "run", "pip-audit", "--disable-pip",
                                    "--requirement", requirements, "--format", "json",
                                    "--progress-spinner", "off"], cwd=PROJECT, text=True,
                                   capture_output=True, timeout=900, check=False)
        except (OSError, subprocess.SubprocessError) as error:
            return "note", f"{skipped}uv could not export uv.lock or run pip-audit ({error})"
    try:
        dependencies = json.loads(audit.stdout)["dependencies"]
    except (ValueError, KeyError):
        return "note", (f"{skipped}pip-audit could not run (it needs PyPI and the vulnerability "
                        f"database; offline?): {last_line(audit.stderr)}")
    found = [f"{d['name']} {d['version']}: {', '.join(v['id'] for v in d['vulns'])} (fixed in "
             f"{', '.join(f for v in d['vulns'] for f in v['fix_versions']) or 'no release yet'})"
             for d in dependencies if d.get("vulns")]
    unanswered = [d["skip_reason"] for d in dependencies if "skip_reason" in d]
    if found:
        return "due", (f"{len(found)} locked Python dependency(ies) have known vulnerabilities "
                       "(update uv.lock; Dependabot proposes it)" + listing(found))
    if unanswered:  # the vulnerability service did not answer for them
        return "note", f"{skipped}pip-audit could not audit {len(unanswered)}: {unanswered[0]}"
    return "ok", "no locked Python dependency has a known vulnerability"


def recorded_base(image):
    """(name, digest) of the base image, as the image's labels record them."""
    labels = image["Config"]["Labels"] or {}
    return labels.get(NAME), labels.get(DIGEST) or labels.get(NAME, "").partition("@")[2]


def decide(arguments):
    """The published image's details (None if there is none) and the checks' answers."""
    base = base_image(DOCKERFILE, TARGET).split("@")[0]
    current = digest(base)
    print(f"Base image of the {TARGET} stage: {canonical(base)}, now at {current}")
    answers = [("due", "forced (--force)")] if arguments.force else []
    pulled = docker("pull", "--quiet", arguments.image, check=False)
    if pulled.returncode:
        return None, [*answers, ("due", f"there is no published image {arguments.image} to "
                                        f"check ({last_line(pulled.stderr)})")]
    published = json.loads(docker("image", "inspect", arguments.image).stdout)[0]
    recorded, recorded_digest = recorded_base(published)
    print(f"Published image {arguments.image}: built on {recorded} {recorded_digest}")
    answers.append(
        ("due", f"the published image has no {DIGEST} label") if not recorded_digest else
        ("due", f"the base image changed from {canonical(recorded)} to {canonical(base)}")
        if recorded and canonical(recorded) != canonical(base) else
        ("due", f"the base image {base} moved: {recorded_digest} -> {current}")
        if recorded_digest != current else ("ok", f"the base image is unchanged ({current})"))
    answers.append(os_check(arguments.image))
    answers.append(python_check() if arguments.audit else
                   ("note", "Python vulnerability check skipped (--no-audit)"))
    return published, answers


def rebuild(arguments, published):
    """Pin, build, label and tag the new image; say what changed; return the step outputs."""
    pin(DOCKERFILE)
    now = datetime.datetime.now(datetime.timezone.utc)
    # The given labels (CI's: source, revision...), then what this build knows better.
    labels = (dict(arguments.label) | base_labels()
              | {"org.opencontainers.image.created": f"{now:%Y-%m-%dT%H:%M:%SZ}"})
    repository = re.sub(r":[^/:]*$", "", arguments.image.split("@")[0])
    tags = [f"{repository}:{now:%Y-%m-%d}", f"{repository}:latest"]
    # The revision label's commit, also in the image's environment (the app's release).
    revision = labels.get("org.opencontainers.image.revision")
    command = ["docker", "buildx", "build", "--pull", "--no-cache", "--load", "--target", TARGET,
               *(f"--label={name}={value}" for name, value in labels.items()),
               *([f"--build-arg=REVISION={revision}"] if revision else []),
               *(f"--tag={tag}" for tag in tags), str(PROJECT)]
    print("Building:", *command, flush=True)
    if subprocess.run(command, check=False).returncode:
        raise Failed("the build failed (docker buildx build, output above)")
    lines = [f"Built {tags[0]}. Base image digest: before "
             f"{published and recorded_base(published)[1] or '(none)'}, after {labels[DIGEST]}",
             *(changes(published["Id"], tags[0]) if published else ["(first build)"])]
    print("\n".join(lines))
    github("GITHUB_STEP_SUMMARY", "### Security rebuild\n\n```text\n" + "\n".join(lines) + "\n```\n")
    for tag in tags if arguments.push else []:
        pushed = docker("push", "--quiet", tag, check=False)
        if pushed.returncode:
            raise Failed(f"docker push {tag} failed: {last_line(pushed.stderr)}")
        print(f"Pushed {tag}")
    return {"image": tags[0], "tags": "\n".join(tags),
            "labels": "\n".join(f"{name}={value}" for name, value in labels.items())}


def base_labels():
    """The name and digest of the prod stage's base image: its pin, else its tag's digest now."""
    base = base_image(DOCKERFILE, TARGET)
    return {NAME: canonical(base), DIGEST: base.partition("@")[2] or digest(base)}


def label(text):
    """NAME=VALUE, as `docker build --label` takes it."""
    name, equals, value = text.partition("=")
    if not name.strip() or not equals or name != name.strip():
        raise argparse.ArgumentTypeError(f"not a label NAME=VALUE: {text!r}")
    return name, value


def github(variable, text):  # $GITHUB_OUTPUT or $GITHUB_STEP_SUMMARY: files to append to
    if os.environ.get(variable):
        with open(os.environ[variable], "a") as file:
            file.write(text)


def outputs(values):
    delimiter = f"EOF_{uuid.uuid4().hex}"
    github("GITHUB_OUTPUT", "".join(f"{name}<<{delimiter}\n{value}\n{delimiter}\n"
                                    for name, value in values.items()))


def decide_command(arguments):
    """check, and rebuild: report the decision; rebuild when one is due and asked for."""
    published, answers = decide(arguments)
    reasons = [text for kind, text in answers if kind == "due"]
    print("".join(f"Note: {text}\n" for kind, text in answers if kind == "note") + (
        "Rebuild due:" + "".join(f"\n  - {text}" for text in reasons) if reasons else
        f"No rebuild due: {'; '.join(text for kind, text in answers if kind == 'ok')}."))
    github("GITHUB_STEP_SUMMARY", f"### Rebuild {'due' if reasons else 'not due'}\n\n" + "".join(
        f"- {text}\n" for kind, text in answers))
    values = {"due": str(bool(reasons)).lower()}
    if arguments.command == "rebuild" and reasons:
        values |= rebuild(arguments, published)
    elif arguments.command == "rebuild":
        print("Nothing built.")
    outputs(values)


def pin_command(arguments):
    files = arguments.files or [DOCKERFILE, *COMPOSE_FILES]
    due = sum(pin(path, arguments.check, arguments.unpinned_only) for path in files)
    if arguments.check and due:
        raise Failed(f"{due} pin(s) missing or behind: run .github/scripts/images.py pin")


def labels_command(_):
    labels = "\n".join(f"{name}={value}" for name, value in base_labels().items())
    print(labels)
    outputs({"labels": labels})


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="images.py", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    commands = parser.add_subparsers(dest="command", required=True)
    pinning = commands.add_parser("pin", help="pin base images to their tags' current digests")
    pinning.add_argument("files", nargs="*", type=Path,
                         help="default: Dockerfile, compose.yaml, deploy/compose.yaml")
    pinning.add_argument("--check", action="store_true",
                         help="change nothing; exit 1 if a pin is missing or behind")
    pinning.add_argument("--unpinned-only", action="store_true",
                         help="pin only images without a digest (Dependabot moves the others)")
    pinning.set_defaults(run=pin_command)
    for name in ("check", "rebuild"):
        command = commands.add_parser(name, help=f"{name} if a rebuild is due")
        command.add_argument("--image", required=True, help="e.g. ghcr.io/org/app:latest")
        command.add_argument("--no-audit", dest="audit", action="store_false",
                             help="skip the Python vulnerability check (pip-audit)")
        command.add_argument("--force", action="store_true", help="due even if nothing changed")
        command.add_argument("--push", action="store_true", help="push the new tags (rebuild)")
        if name == "rebuild":
            command.add_argument(
                "--label", action="append", type=label, default=[], metavar="NAME=VALUE",
                help="an OCI label for the image, e.g. org.opencontainers.image.source=URL "
                     "(repeatable; the base image's and the build date are set here)")
        command.set_defaults(run=decide_command)
    compare = commands.add_parser("diff", help="the package changes between two local images")
    compare.add_argument("images", nargs=2, metavar="IMAGE", help="the old image, then the new")
    compare.set_defaults(run=lambda given: print("\n".join(changes(*given.images))))
    labels = commands.add_parser("labels", help="base image labels (name, digest) to build with")
    labels.set_defaults(run=labels_command)
    arguments = parser.parse_args(argv)
    try:
        arguments.run(arguments)
    except (Failure, OSError, subprocess.SubprocessError) as error:  # e.g. a docker timeout
        print(f"images.py: {error}", file=sys.stderr)
        return getattr(error, "status", 2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
