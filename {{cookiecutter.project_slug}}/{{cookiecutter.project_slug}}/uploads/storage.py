"""Files on IPFS: a Django storage backed by a Kubo node's RPC API (docs/ipfs.md).

A stored file is named `<cid>/<its own name>` (`stored_name`): the CID is the hash of its
content, so the same bytes always get the same CID and are stored once, and the name is kept
for downloads. Saving adds and pins the file on the node; anyone can then fetch it by CID,
from this project's gateway or from any IPFS node that has it. Everything on IPFS is public
to whoever has the CID.
"""

import functools
import json
import re
import tempfile
from urllib.parse import quote

import httpx
from django.core.files import File
from django.core.files.storage import Storage, storages
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.deconstruct import deconstructible
from django.utils.functional import LazyObject, empty

# How files are cut into blocks, stated in full rather than left to the node's defaults (which
# Kubo's profiles change): the same bytes then get the same CID on any Kubo version.
ADD_PARAMETERS = {"cid-version": "1", "raw-leaves": "false", "chunker": "size-262144",
                  "hash": "sha2-256"}
# A CID as ADD_PARAMETERS makes it (version 1, base32: `bafybei` + 52 letters), or a
# version 0 one (`Qm` + 44 base58 characters) from another node. Checked before any name
# reaches the node.
CID = re.compile(r"bafybei[a-z2-7]{52}|Qm[1-9A-HJ-NP-Za-km-z]{44}")
CID_LENGTH = 59
CHUNK = 1 << 16


class NodeUnavailable(OSError):
    """The Kubo node did not answer (down, unreachable or too slow): nothing was stored."""


class NodeError(OSError):
    """The Kubo node answered with an error."""


def cid_of(name):
    """The CID in a stored file's name; ValueError for a name this storage never gave."""
    cid = name.split("/", 1)[0]
    if not CID.fullmatch(cid):
        raise ValueError(f"{name!r} does not start with a CID")
    return cid


@deconstructible
class KuboStorage(Storage):
    """Usable as a STORAGES alias (config/settings.py: "ipfs") or `FileField(storage=...)`."""

    def __init__(self, api_url, gateway_url, timeout=30, auth=None):
        self.api_url, self.gateway_url = api_url.rstrip("/"), gateway_url.rstrip("/")
        self.timeout = timeout
        # An Authorization header value for a node behind a proxy or a pinning service's
        # Kubo-compatible API (IPFS_API_AUTH: "Bearer <token>", "Basic <base64>").
        self.auth = auth

    @functools.cached_property
    def client(self):
        headers = {"Authorization": self.auth} if self.auth else {}
        return httpx.Client(base_url=f"{self.api_url}/api/v0/", timeout=self.timeout,
                            headers=headers)

    def _call(self, command, stream=False, **kwargs):
        """POST to /api/v0/<command>; Kubo's own `timeout` ends the call on the node too."""
        params = kwargs.pop("params", {}) | {"timeout": f"{self.timeout}s"}
        request = self.client.build_request("POST", command, params=params, **kwargs)
        try:
            response = self.client.send(request, stream=stream)
        except httpx.TransportError as error:
            raise NodeUnavailable(f"the IPFS node at {self.api_url} did not answer "
                                  f"({type(error).__name__})") from error
        if response.is_error:
            response.read()
            response.close()
            is_json = response.headers.get("content-type", "").startswith("application/json")
            message = response.json().get("Message") if is_json else response.text.strip()
            if "deadline exceeded" in message:  # the node's own end of `timeout`
                raise NodeUnavailable(f"the IPFS node at {self.api_url} did not answer "
                                      f"within {self.timeout} s")
            raise NodeError(f"the IPFS node refused {command}: {message}")
        return response if stream else response.json()

    def add(self, name, content):
        """Add and pin `content` on the node; its CID. (Upload.save calls this itself, so the
        model gets the CID as the node gives it, not parsed back out of a name.)"""
        content.seek(0)
        added = self._call("add", params=ADD_PARAMETERS | {"pin": "true"},
                           files={"file": (name, content, "application/octet-stream")})
        return added["Hash"]

    @staticmethod
    def stored_name(cid, name):
        return f"{cid}/{name}"

    def _save(self, name, content):
        return self.stored_name(self.add(name, content), name)

    def get_available_name(self, name, max_length=None):
        """The name as it is, its stem shortened to leave room for the CID in front: content
        addressing makes every name available."""
        name = name.rsplit("/", 1)[-1]
        if max_length is not None and len(name) + CID_LENGTH + 1 > max_length:
            stem, dot, extension = name.rpartition(".")
            room = max_length - CID_LENGTH - 1 - len(dot + extension)
            name = f"{stem[:room]}{dot}{extension}" if stem else name[:max_length - CID_LENGTH - 1]
        return name

    def _open(self, name, mode="rb"):
        """The file's bytes in a temporary file (in memory while small), read from the node."""
        response = self._call("cat", stream=True, params={"arg": cid_of(name)})
        spooled = tempfile.SpooledTemporaryFile(max_size=CHUNK * 16)
        try:
            for chunk in response.iter_bytes(CHUNK):
                spooled.write(chunk)
        except httpx.TransportError as error:
            spooled.close()
            raise NodeUnavailable(f"the IPFS node stopped sending {name}") from error
        finally:
            response.close()
        spooled.seek(0)
        return File(spooled, name=name)

    def size(self, name):
        with self.open(name) as file:
            return file.size

    def exists(self, name):
        """Whether this node keeps the file (has it pinned)."""
        try:
            cid = cid_of(name)
        except ValueError:
            return False  # not a name this storage gives: the name of a file before saving
        try:
            self._call("pin/ls", params={"arg": cid, "type": "recursive"})
        except NodeError:
            return False
        return True

    def delete(self, name):
        """Unpin, then collect: the node no longer holds or serves the content (other nodes may
        still have it). Callers count references first: the same content may be saved under
        more than one row."""
        self.unpin(name)
        self.collect()

    def unpin(self, name):
        """Let the node drop the content at its next garbage collection."""
        try:
            self._call("pin/rm", params={"arg": cid_of(name)})
        except NodeError as error:
            if "not pinned" not in str(error):
                raise

    def collect(self):
        """Garbage-collect the node (Kubo's `repo gc`): every block no pin reaches is deleted,
        and the gateway answers 404 for it (deploy/scripts/ipfs-config.sh: Gateway.NoFetch).
        Content being added is safe: Kubo adds and pins under the lock GC takes. Returns how many
        blocks went; NodeError if the node reported an error for some of them."""
        removed, errors = 0, []
        response = self._call("repo/gc", stream=True, params={"stream-errors": "true"})
        try:
            for line in response.iter_lines():
                if not line.strip():
                    continue
                answer = json.loads(line)
                if answer.get("Error"):
                    errors.append(answer["Error"])
                elif answer.get("Key"):
                    removed += 1
        except httpx.TransportError as error:
            raise NodeUnavailable("the IPFS node stopped answering repo/gc") from error
        finally:
            response.close()
        if errors:
            raise NodeError(f"the IPFS node's garbage collection failed: {'; '.join(errors)}")
        return removed

    def url(self, name):
        cid, _, filename = name.partition("/")
        cid_of(cid)
        return f"{self.gateway_url}/ipfs/{cid}?filename={quote(filename)}"

    def problem(self, timeout=5):
        """None while the node answers its API within `timeout` seconds (the storage's own
        timeout if shorter), else what is wrong (for /healthz/ipfs): refused, no such host, too
        slow (or dropped by a firewall), or an error status (a proxy refusing IPFS_API_AUTH)."""
        timeout = min(timeout, self.timeout)
        where = f"ipfs node at {self.api_url}"
        try:
            response = self.client.post("version", timeout=timeout)
        except httpx.TimeoutException:
            return (f"{where}: no answer within {timeout} s (too slow, or the network drops "
                    "the packets)")
        except httpx.TransportError as error:
            return f"{where}: unreachable ({error or type(error).__name__})"
        if response.is_error:
            return f"{where}: answered {response.status_code} {response.reason_phrase}"
        return None


class _Storage(LazyObject):
    """The "ipfs" storage from settings, looked up at first use and again whenever STORAGES
    changes (as tests change it): a FileField keeps the object its storage callable returns."""

    def _setup(self):
        self._wrapped = storages["ipfs"]


_storage = _Storage()


@receiver(setting_changed)
def _forget_the_storage(setting, **kwargs):
    if setting == "STORAGES":
        _storage._wrapped = empty


def ipfs_storage():
    """The "ipfs" storage, for FileField(storage=ipfs_storage)."""
    return _storage
