"""Request bodies are bounded in Django too (docs/pages.md#limits): Caddy refuses them first in
production, and this holds wherever a request reaches Django another way. And HSTS preload,
which cannot be undone quickly, is opt-in."""

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from config import env


@pytest.fixture
def temporary_files(settings, tmp_path):
    """Where Django would write the files of a request it reads (FILE_UPLOAD_TEMP_DIR)."""
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path)
    return tmp_path


@pytest.mark.django_db
def test_a_file_sent_to_the_sign_in_page_is_refused_before_it_is_read(client, temporary_files):
    response = client.post(reverse("login"), {
        "username": "member", "password": "x",
        "file": SimpleUploadedFile("big.bin", b"x" * (3 * 1024 * 1024))})
    assert response.status_code == 400
    assert list(temporary_files.iterdir()) == []


@pytest.mark.django_db
def test_a_large_form_body_is_refused(client):
    response = client.post(reverse("login"), {"username": "x" * (2 * 1024 * 1024)})
    assert response.status_code == 400


def test_hsts_preload_is_opt_in():
    production = {"SECRET_KEY": "k" * 40 + "0123456789", "ALLOWED_HOSTS": "example.com",
                  "EMAIL_URL": "smtp://mail.example.com",
                  "DATABASE_URL": "postgres://user:secret@db:5432/name"}
    assert env.load(production)["SECURE_HSTS_PRELOAD"] is False
    assert env.load(production | {"SECURE_HSTS_PRELOAD": "true"})["SECURE_HSTS_PRELOAD"] is True


@pytest.mark.django_db
@pytest.mark.parametrize("preload", [False, True])
def test_the_hsts_header_names_preload_only_when_asked(client, settings, preload):
    settings.SECURE_HSTS_SECONDS, settings.SECURE_HSTS_PRELOAD = 3600, preload
    header = client.get("/healthz", secure=True)["Strict-Transport-Security"]
    assert header == "max-age=3600; includeSubDomains" + ("; preload" if preload else "")
