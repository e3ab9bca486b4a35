"""Sign-in and passwords, through Django's own views, as a user goes through them."""

import re

import pytest
from django.core import mail
from django.urls import reverse

OLD, NEW = "an-old-passphrase", "a-brand-new-passphrase"


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user("member", "member@example.com", OLD)


def signs_in(client, password):
    response = client.post(reverse("login"), {"username": "member", "password": password})
    return response.status_code == 302


@pytest.mark.django_db
def test_a_wrong_password_is_refused_with_a_message(client, member):
    response = client.post(reverse("login"), {"username": "member", "password": "wrong"})
    assert response.status_code == 200
    assert "enter a correct username and password" in response.content.decode()


@pytest.mark.django_db
def test_a_password_change_needs_the_old_one(client, member):
    client.force_login(member)
    response = client.post(reverse("password_change"), {
        "old_password": OLD, "new_password1": NEW, "new_password2": NEW})
    assert response["Location"] == reverse("password_change_done")
    client.logout()
    assert (signs_in(client, OLD), signs_in(client, NEW)) == (False, True)


@pytest.mark.django_db
def test_a_password_reset_mails_a_link_that_sets_a_new_password_once(client, member, settings):
    response = client.post(reverse("password_reset"), {"email": "member@example.com"})
    assert response["Location"] == reverse("password_reset_done")
    [message] = mail.outbox
    assert message.to == ["member@example.com"]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    link = re.search(r"https?://[^/\s]+(/accounts/reset/\S+/)", message.body).group(1)
    form = client.get(link)["Location"]  # Django swaps the token for a session-held one
    response = client.post(form, {"new_password1": NEW, "new_password2": NEW})
    assert response["Location"] == reverse("password_reset_complete")
    assert (signs_in(client, OLD), signs_in(client, NEW)) == (False, True)
    assert "was used already or has expired" in client.get(link, follow=True).content.decode()


@pytest.mark.django_db
def test_a_reset_for_an_unknown_address_sends_nothing_and_says_the_same(client, member):
    response = client.post(reverse("password_reset"), {"email": "nobody@example.com"})
    assert response["Location"] == reverse("password_reset_done")
    assert mail.outbox == []
