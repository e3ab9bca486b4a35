"""Fixtures for every test, in tests/ and in the apps' folders alike."""

import os

import hypothesis
import pytest
from django.core.cache import cache

# HYPOTHESIS_PROFILE=ci: many examples, derandomised so a failure reproduces on every run.
hypothesis.settings.register_profile("ci", max_examples=200, derandomize=True, deadline=None,
                                     print_blob=True)
hypothesis.settings.register_profile("dev", max_examples=30, deadline=None)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


@pytest.fixture(autouse=True)
def _static_files_without_a_manifest(settings):
    """Tests render pages without running collectstatic first: plain static file names, where
    production's storage would need the manifest that collectstatic writes."""
    settings.STORAGES = settings.STORAGES | {
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


@pytest.fixture(autouse=True)
def _empty_cache():
    """Each test starts with nothing counted (password-reset limits live in the cache)."""
    cache.clear()
