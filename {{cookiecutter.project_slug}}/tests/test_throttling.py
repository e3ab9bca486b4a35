"""Sign-in throttling (django-axes) and the password-reset mail limit (docs/pages.md#limits)."""

import datetime
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.urls import reverse

from config import limits
from {{ cookiecutter.project_slug }}.models import LimitCount

RIGHT = "the-right-passphrase"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Dozens of sign-ins per test: a cheap hash (the limits do not depend on it)."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user("member", "member@example.com", RIGHT)


@pytest.fixture
def other(django_user_model):
    return django_user_model.objects.create_user("other", "other@example.com", RIGHT)


def sign_in(client, username, password, address="203.0.113.7", page="login"):
    """A sign-in as it arrives from Caddy: the client's address last in X-Forwarded-For."""
    return client.post(reverse(page), {"username": username, "password": password},
                       HTTP_X_FORWARDED_FOR=address)


@pytest.mark.django_db
def test_the_eleventh_sign_in_after_ten_wrong_is_refused_even_when_right_until_the_lock_ends(
        client, member, other, settings):
    with time_machine.travel(datetime.datetime(2030, 1, 1, 12, tzinfo=datetime.UTC), tick=False):
        statuses = [sign_in(client, "member", "wrong").status_code for _ in range(10)]
        assert statuses == [200] * 9 + [429]
        refused = sign_in(client, "member", RIGHT)
        assert refused.status_code == 429
        assert "Too many failed sign-ins" in refused.content.decode()
        assert "_auth_user_id" not in client.session
        # Another account, from another address, is unaffected.
        assert sign_in(client, "other", RIGHT, address="198.51.100.9").status_code == 302
        client.logout()
    # The lock ends by itself: 15 minutes (LOGIN_LOCKOUT_MINUTES) after the last failure.
    with time_machine.travel(datetime.datetime(2030, 1, 1, 12, 14, tzinfo=datetime.UTC)):
        assert sign_in(client, "member", RIGHT).status_code == 429
    with time_machine.travel(datetime.datetime(2030, 1, 1, 12, 16, tzinfo=datetime.UTC)):
        assert sign_in(client, "member", RIGHT).status_code == 302


@pytest.mark.django_db
def test_one_address_is_locked_across_accounts_and_a_forged_forwarded_for_does_not_help(
        client, member, other):
    for number in range(10):
        sign_in(client, f"nobody{number}", "wrong")
    # Caddy puts the address it sees last: what a client wrote before it changes nothing.
    assert sign_in(client, "other", RIGHT, address="192.0.2.1, 203.0.113.7").status_code == 429
    assert sign_in(client, "other", RIGHT, address="192.0.2.1").status_code == 302


@pytest.mark.django_db
def test_the_admin_sign_in_is_throttled_too(client, django_user_model):
    django_user_model.objects.create_superuser("boss", "boss@example.com", RIGHT)
    for _ in range(10):
        sign_in(client, "boss", "wrong", page="admin:login")
    assert sign_in(client, "boss", RIGHT, page="admin:login").status_code == 429


@pytest.mark.django_db
def test_password_reset_mails_are_limited_per_address_for_an_hour(client, member, settings):
    def ask(email, address="203.0.113.7"):
        return client.post(reverse("password_reset"), {"email": email},
                           HTTP_X_FORWARDED_FOR=address)

    start = datetime.datetime(2030, 1, 1, 12, tzinfo=datetime.UTC)
    with time_machine.travel(start, tick=False):
        assert [ask("member@example.com").status_code for _ in range(5)] == [302] * 5
        refused = ask("member@example.com", address="198.51.100.9")
        assert refused.status_code == 429
        assert "Too many password reset requests" in refused.content.decode()
        assert ask("other@example.com").status_code == 429  # from the same client address
        assert len(mail.outbox) == 5
    with time_machine.travel(start + datetime.timedelta(minutes=61), tick=False):
        assert ask("member@example.com").status_code == 302
        assert len(mail.outbox) == 6
        # Windows that ended are gone from the table, whatever their key.
        assert not LimitCount.objects.filter(key__endswith="other@example.com").exists()


@pytest.mark.django_db(transaction=True)
def test_requests_at_the_same_moment_each_count():
    """As from many gunicorn workers and containers at once: each request gets a count of its
    own (a count read by two before either writes it would be given twice)."""
    start = threading.Barrier(20)

    def one(_):
        start.wait()
        try:
            return limits.count("password-reset:to:member@example.com", datetime.timedelta(hours=1))
        finally:
            connection.close()

    with ThreadPoolExecutor(20) as pool:
        counts = sorted(pool.map(one, range(20)))
    assert counts == list(range(1, 21))
