"""Static files as WhiteNoise stores them (names with a hash of the content, brotli and gzip
copies), with every compressed copy kept in a cache by the hash of what it compresses.

Brotli at WhiteNoise's quality (11) is most of collectstatic's time, and collectstatic runs at
every image build: with the cache (a cache mount in the Dockerfile), a build after a code change
compresses only the static files that changed, not all of Django's admin again.
"""

import hashlib
import os
import tempfile
from pathlib import Path

from whitenoise.compress import Compressor
from whitenoise.storage import CompressedManifestStaticFilesStorage

CACHE = Path.home() / ".cache" / "compressed-static"


class CachingCompressor(Compressor):
    """WhiteNoise's compressor, which looks in `cache` before it compresses. Its output depends
    on the input alone (gzip's timestamp is 0), so a copy found by the input's hash is the one
    it would write."""

    def __init__(self, cache, **kwargs):
        super().__init__(**kwargs)
        self.cache = Path(cache)

    def compress_brotli(self, data):
        return self._cached(data, "br", super().compress_brotli)

    def compress_gzip(self, data):
        return self._cached(data, "gz", super().compress_gzip)

    def _cached(self, data, suffix, compress):
        path = self.cache / f"{hashlib.sha256(data).hexdigest()}.{suffix}"
        try:
            return path.read_bytes()
        except OSError:
            pass
        compressed = compress(data)
        try:  # a cache that cannot be written costs time only: collectstatic goes on
            self.cache.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.cache, delete=False) as partial:
                partial.write(compressed)
            os.replace(partial.name, path)  # whole or absent, whatever runs beside it
        except OSError:
            pass
        return compressed


class CompressedManifestStorage(CompressedManifestStaticFilesStorage):
    """settings.STORAGES["staticfiles"]: WhiteNoise's storage with the compressor above."""

    def create_compressor(self, **kwargs):
        return CachingCompressor(CACHE, **kwargs)
