"""Pin the base images in the Dockerfile and compose files to the digests their tags have now.

    python scripts/pin_base_images.py            # pin Dockerfile and compose*.yaml in place
    python scripts/pin_base_images.py --check    # change nothing; exit 1 if a pin is missing or behind
    python scripts/pin_base_images.py --unpinned-only   # pin what has no digest; keep the others
    python scripts/pin_base_images.py --registry http://127.0.0.1:5000   # through a Docker Hub mirror

`FROM python:3.13-slim` becomes `FROM python:3.13-slim@sha256:...`, and `image: postgres:17`
becomes `image: postgres:17@sha256:...`. The tag stays, so a later run (or Dependabot) can move a
pin forward: each run asks the registry for the tag's current digest and replaces an older pin.
Images that compose builds itself (a service with `build:`) and references made of variables are
left alone. Only the Python standard library is needed.

Docker Hub images (no registry host in the name) are resolved at --registry, default Docker Hub's
API; the environment variable BASE_IMAGE_REGISTRY sets it too. Images with a host in their name
(ghcr.io/..., localhost:5000/...) are resolved at that host. Exit status: 0 done (or, with
--check, nothing to do), 1 a pin is missing or behind (--check), 2 an error, named on stderr.
"""

import argparse
import dataclasses
import hashlib
import json
import os
import re
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

DOCKER_HUB = "https://registry-1.docker.io"
DOCKER_HUB_HOSTS = {"docker.io", "index.docker.io", "registry-1.docker.io"}
# The digest of a tag is the digest of what the registry serves for it: for a multi-platform
# image the index (manifest list), else the image manifest. Ask for all four kinds.
MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY = re.compile(rf"^{COMPONENT}(?:/{COMPONENT})*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
COMPOSE_FILES = ("compose*.yaml", "compose*.yml", "docker-compose*.yaml", "docker-compose*.yml")


class RegistryError(Exception):
    """A problem that stops the command, worded for the person who runs it."""


@dataclasses.dataclass(frozen=True)
class Reference:
    """An image reference, split the way Docker reads it."""

    name: str  # as written, without tag or digest: "python", "ghcr.io/org/app"
    host: str | None  # registry host[:port]; None for Docker Hub
    repository: str  # path in the registry: "library/python", "org/app"
    tag: str | None
    digest: str | None

    @property
    def tagged(self):
        """The reference as written, without its digest: "python:3.13-slim"."""
        return f"{self.name}:{self.tag}" if self.tag else self.name

    @property
    def canonical(self):
        """The fully qualified name and tag: "docker.io/library/python:3.13-slim"."""
        return f"{self.host or 'docker.io'}/{self.repository}:{self.tag or 'latest'}"

    def pinned(self, digest):
        return f"{self.tagged}@{digest}"


def parse_reference(text):
    """Split an image reference; raise RegistryError if it is not one."""
    name, _, digest = text.partition("@")
    if digest and not DIGEST.match(digest):
        raise RegistryError(f"{text!r} is not an image reference: bad digest {digest!r}")
    tag = None
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = name.rsplit(":", 1)
        if not TAG.match(tag):
            raise RegistryError(f"{text!r} is not an image reference: bad tag {tag!r}")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        host, repository = first, rest
        if host in DOCKER_HUB_HOSTS:
            host = None
    else:
        host, repository = None, name
    if host is None and "/" not in repository:
        repository = f"library/{repository}"
    if not REPOSITORY.match(repository):
        raise RegistryError(f"{text!r} is not an image reference like python:3.13-slim")
    if tag is None and not digest:
        tag = "latest"
    return Reference(name, host, repository, tag, digest or None)


class Registry:
    """Resolves tags to digests over the registry HTTP API v2, anonymously."""

    def __init__(self, docker_hub=None, timeout=30):
        self.docker_hub = (docker_hub or os.environ.get("BASE_IMAGE_REGISTRY")
                           or DOCKER_HUB).rstrip("/")
        self.timeout = timeout
        self.resolved = {}

    def base_url(self, reference):
        if reference.host is None:
            return self.docker_hub
        local = re.match(r"^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$", reference.host)
        return f"{'http' if local else 'https'}://{reference.host}"

    def digest(self, reference):
        """The digest the registry serves for the reference's tag now."""
        if reference.tag is None:
            raise RegistryError(f"{reference.name}@{reference.digest} has no tag to resolve")
        key = (reference.host, reference.repository, reference.tag)
        if key not in self.resolved:
            self.resolved[key] = self._fetch_digest(reference)
        return self.resolved[key]

    def _fetch_digest(self, reference):
        base = self.base_url(reference)
        url = f"{base}/v2/{reference.repository}/manifests/{reference.tag}"
        where = f"{reference.tagged} at {base}"
        response = self._request(url, where, method="HEAD")
        digest = response.headers.get("Docker-Content-Digest")
        if not digest:  # some registries answer HEAD without it: hash the manifest itself
            body = self._request(url, where).read()
            digest = "sha256:" + hashlib.sha256(body).hexdigest()
        if not DIGEST.match(digest):
            raise RegistryError(f"{where}: the registry answered with an odd digest {digest!r}")
        return digest

    def _request(self, url, where, method="GET", token=None):
        headers = {"Accept": MANIFEST_TYPES}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        request = urllib.request.Request(url, method=method, headers=headers)
        try:
            return urllib.request.urlopen(request, timeout=self.timeout)  # noqa: S310
        except urllib.error.HTTPError as error:
            challenge = error.headers.get("WWW-Authenticate", "")
            if error.code == 401 and token is None and challenge.lower().startswith("bearer "):
                return self._request(url, where, method, self._token(challenge, where))
            if error.code == 404:
                raise RegistryError(f"unknown image: {where} has no such repository or tag "
                                    "(HTTP 404)") from None
            if error.code in (401, 403):
                raise RegistryError(f"unknown image: {where} refused anonymous access "
                                    f"(HTTP {error.code}): the image does not exist or is "
                                    "private") from None
            raise RegistryError(f"{where}: the registry answered HTTP {error.code} "
                                f"{error.reason}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(f"cannot reach the registry for {where}: {reason}") from None

    def _token(self, challenge, where):
        """An anonymous pull token, as Docker Hub and ghcr.io hand out (Bearer challenge)."""
        fields = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
        if "realm" not in fields:
            raise RegistryError(f"{where}: the registry asks for a login this script cannot do")
        query = urllib.parse.urlencode({key: value for key, value in fields.items()
                                        if key in ("service", "scope")})
        try:
            with urllib.request.urlopen(f"{fields['realm']}?{query}",  # noqa: S310
                                        timeout=self.timeout) as response:
                answer = json.load(response)
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(f"{where}: cannot get a pull token from {fields['realm']}: "
                                f"{reason}") from None
        return answer.get("token") or answer.get("access_token")


@dataclasses.dataclass
class Pin:
    path: Path
    line: int
    reference: str  # name:tag as written
    old: str | None  # digest pinned before, if any
    new: str

    def describe(self, check=False):
        where = f"{self.path.name}:{self.line}"
        if self.old == self.new:
            return f"{where}: {self.reference} already pinned to the current {self.new}"
        if check:
            return (f"{where}: {self.reference} behind: {self.old} -> {self.new}" if self.old
                    else f"{where}: {self.reference} not pinned (the tag is at {self.new})")
        if self.old:
            return f"{where}: {self.reference} {self.old} -> {self.new}"
        return f"{where}: {self.reference} pinned to {self.new}"

    def __str__(self):
        return self.describe()


# --- Dockerfile ---

FROM = re.compile(r"^(?P<lead>\s*FROM\s+)(?P<flags>(?:--\S+\s+)*)(?P<image>\S+)(?P<rest>.*)$",
                  re.IGNORECASE)
STAGE_NAME = re.compile(r"^\s+AS\s+(\S+)", re.IGNORECASE)
ARG = re.compile(r"""^(?P<lead>\s*ARG\s+(?P<name>\w+)=)(?P<q>["']?)(?P<value>[^"'\s]*)(?P=q)""",
                 re.IGNORECASE)
VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclasses.dataclass
class Stage:
    line: int  # 0-based index of its FROM line
    image: str  # the FROM image as written, variables expanded
    name: str | None
    argument: str | None  # the global ARG that names the whole image, if it is one


def dockerfile_stages(lines):
    """Every FROM of a Dockerfile, with global ARG defaults substituted."""
    arguments, stages = {}, []
    for number, line in enumerate(lines):
        argument = ARG.match(line)
        if argument and not stages:
            arguments[argument["name"]] = (number, argument["value"])
        match = FROM.match(line)
        if not match:
            continue
        token = match["image"]
        whole = VARIABLE.fullmatch(token)
        image = VARIABLE.sub(lambda m: arguments.get(m[1] or m[2], (None, m[0]))[1], token)
        name = STAGE_NAME.match(match["rest"])
        stages.append(Stage(number, image, name[1] if name else None,
                            (whole[1] or whole[2]) if whole else None))
    return stages, arguments


def external(stage, stages):
    """Whether a stage starts from an image (not scratch, not an earlier stage, no variable)."""
    earlier = {s.name.lower() for s in stages if s.name and s.line < stage.line}
    return (stage.image.lower() != "scratch" and stage.image.lower() not in earlier
            and "$" not in stage.image)


def base_of(dockerfile_text, target=None):
    """The image the target stage (default: the last) is built on, following earlier stages."""
    stages, _ = dockerfile_stages(dockerfile_text.splitlines())
    if not stages:
        raise RegistryError("the Dockerfile has no FROM line")
    by_name = {s.name.lower(): s for s in stages if s.name}
    if target and target.lower() not in by_name:
        raise RegistryError(f"the Dockerfile has no stage named {target!r} "
                            f"(stages: {', '.join(s.name for s in stages if s.name) or 'none'})")
    stage = by_name[target.lower()] if target else stages[-1]
    while not external(stage, stages):
        if "$" in stage.image or stage.image.lower() == "scratch":
            raise RegistryError(f"the stage on line {stage.line + 1} starts from "
                                f"{stage.image!r}, not from an image this script can resolve")
        stage = by_name[stage.image.lower()]
    return parse_reference(stage.image)


def pin_dockerfile(path, text, registry, unpinned_only=False):
    lines = text.splitlines(keepends=True)
    stages, arguments = dockerfile_stages(lines)
    pins, seen = [], set()
    for stage in stages:
        if not external(stage, stages):
            continue
        reference = parse_reference(stage.image)
        if reference.tag is None or (unpinned_only and reference.digest):
            continue  # pinned by digest alone (nothing to move it to), or pinned and kept
        digest = registry.digest(reference)
        if stage.argument and stage.argument in arguments:
            number, _ = arguments[stage.argument]
            lines[number] = ARG.sub(lambda m, d=digest, r=reference: (
                f"{m['lead']}{m['q']}{r.pinned(d)}{m['q']}"), lines[number], count=1)
        else:
            match = FROM.match(lines[stage.line].rstrip("\r\n"))
            ending = lines[stage.line][len(lines[stage.line].rstrip("\r\n")):]
            token = match["image"].split("@", 1)[0]
            lines[stage.line] = (f"{match['lead']}{match['flags']}{token}@{digest}"
                                 f"{match['rest']}{ending}")
            number = stage.line
        if number not in seen:
            seen.add(number)
            pins.append(Pin(path, number + 1, reference.tagged, reference.digest, digest))
    return "".join(lines), sorted(pins, key=lambda pin: pin.line)


# --- compose files ---

IMAGE = re.compile(r"""^(?P<lead>\s*(?:-\s+)?image:\s*)(?P<q>["']?)(?P<image>[^"'\s#]+)(?P=q)"""
                   r"""(?P<rest>\s*(?:#.*)?)$""")


def indentation(line):
    return len(line) - len(line.lstrip(" "))


def builds_itself(lines, number):
    """Whether the mapping that holds `image:` on this line also has a `build:` key."""
    level = indentation(lines[number])
    for step in (-1, 1):
        index = number + step
        while 0 <= index < len(lines):
            line = lines[index]
            if line.strip() and not line.lstrip().startswith("#"):
                if indentation(line) < level:
                    break
                if indentation(line) == level and re.match(r"^\s*build\s*:", line):
                    return True
            index += step
    return False


def pin_compose(path, text, registry, unpinned_only=False):
    lines = text.splitlines(keepends=True)
    pins = []
    for number, line in enumerate(lines):
        match = IMAGE.match(line.rstrip("\r\n"))
        if not match or "$" in match["image"] or builds_itself(lines, number):
            continue
        reference = parse_reference(match["image"])
        if reference.tag is None or (unpinned_only and reference.digest):
            continue
        digest = registry.digest(reference)
        ending = line[len(line.rstrip("\r\n")):]
        lines[number] = (f"{match['lead']}{match['q']}{reference.pinned(digest)}{match['q']}"
                         f"{match['rest']}{ending}")
        pins.append(Pin(path, number + 1, reference.tagged, reference.digest, digest))
    return "".join(lines), pins


def pin_file(path, registry, write=True, unpinned_only=False):
    """Pin one Dockerfile or compose file (only what has no digest yet, if unpinned_only);
    return its pins."""
    try:
        text = path.read_text()
    except OSError as error:
        raise RegistryError(f"cannot read {path}: {error.strerror}") from None
    compose = path.suffix in (".yaml", ".yml")
    try:
        new_text, pins = (pin_compose if compose else pin_dockerfile)(path, text, registry,
                                                                      unpinned_only)
    except RegistryError as error:
        raise RegistryError(f"{path.name}: {error}") from None
    if write and new_text != text:
        path.write_text(new_text)
    return pins


def default_files(root):
    files = [root / "Dockerfile"] if (root / "Dockerfile").exists() else []
    for pattern in COMPOSE_FILES:
        files += sorted(root.glob(pattern))
    return files


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="pin_base_images.py", description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n", 2)[2])
    parser.add_argument("files", nargs="*", type=Path,
                        help="Dockerfiles and compose files (default: Dockerfile and compose*.yaml "
                             "in the project)")
    parser.add_argument("--registry", help=f"where Docker Hub images are resolved "
                                           f"(default: $BASE_IMAGE_REGISTRY or {DOCKER_HUB})")
    parser.add_argument("--unpinned-only", action="store_true",
                        help="pin only images that have no digest yet; leave existing pins as "
                             "they are (Dependabot moves them, after its cooldown)")
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 if a pin is missing or behind")
    arguments = parser.parse_args(argv)
    files = arguments.files or default_files(Path(__file__).resolve().parent.parent)
    if not files:
        print("pin_base_images: no Dockerfile or compose file found", file=sys.stderr)
        return 2
    registry = Registry(arguments.registry)
    stale = []
    try:
        for path in files:
            for pin in pin_file(path, registry, write=not arguments.check,
                                unpinned_only=arguments.unpinned_only):
                print(pin.describe(arguments.check))
                if pin.old != pin.new:
                    stale.append(pin)
    except RegistryError as error:
        print(f"pin_base_images: {error}", file=sys.stderr)
        return 2
    if arguments.check and stale:
        print(f"{len(stale)} pin(s) missing or behind: run scripts/pin_base_images.py",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
