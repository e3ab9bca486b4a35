"""config/static.py: compressed copies of static files are made once, then reused."""

from pathlib import Path

import brotli
import pytest
from whitenoise.compress import Compressor

from config.static import CachingCompressor

CSS = b"body { color: #123; margin: 0 auto; }\n" * 200


def compressed(compressor, path):
    """The copies compress() writes beside `path`, by suffix."""
    return {name.rsplit(".", 1)[1]: Path(name).read_bytes()
            for name in compressor.compress(str(path))}


def test_the_copies_are_whitenoises_and_a_second_build_reads_them_from_the_cache(
        tmp_path, monkeypatch):
    (tmp_path / "site.css").write_bytes(CSS)
    cache = tmp_path / "cache"
    first = compressed(CachingCompressor(cache, quiet=True), tmp_path / "site.css")
    assert first == compressed(Compressor(quiet=True), tmp_path / "site.css")
    assert brotli.decompress(first["br"]) == CSS
    assert len(list(cache.iterdir())) == 2

    def no_compressing(data):
        raise AssertionError("compressed again")

    monkeypatch.setattr(Compressor, "compress_brotli", staticmethod(no_compressing))
    monkeypatch.setattr(Compressor, "compress_gzip", staticmethod(no_compressing))
    (tmp_path / "copy.css").write_bytes(CSS)
    assert compressed(CachingCompressor(cache, quiet=True), tmp_path / "copy.css") == first
    (tmp_path / "other.css").write_bytes(CSS + b"p { margin: 0 }\n")
    with pytest.raises(AssertionError, match="compressed again"):  # other content: compressed
        compressed(CachingCompressor(cache, quiet=True), tmp_path / "other.css")


def test_a_cache_that_cannot_be_written_costs_time_only(tmp_path):
    (tmp_path / "site.css").write_bytes(CSS)
    (tmp_path / "cache").write_text("a file where the cache directory would be")
    copies = compressed(CachingCompressor(tmp_path / "cache", quiet=True), tmp_path / "site.css")
    assert copies == compressed(Compressor(quiet=True), tmp_path / "site.css")
