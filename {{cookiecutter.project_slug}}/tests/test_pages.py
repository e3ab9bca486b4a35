"""Every page renders inside the site's layout and carries the security headers."""

import pytest
from django.urls import reverse

PUBLIC_PAGES = ["home", "login", "password_reset", "password_reset_done",
                "password_reset_complete"]
SIGNED_IN_PAGES = ["password_change", "password_change_done"]


@pytest.fixture
def member(django_user_model, client):
    user = django_user_model.objects.create_user("member", "member@example.com", "a-long-passphrase")
    client.force_login(user)
    return user


def assert_in_layout(response):
    assert response.status_code == 200
    page = response.content.decode()
    assert page.count("<h1>") == 1
    assert 'rel="stylesheet"' in page  # the layout's stylesheet
    assert f'href="{reverse("home")}"' in page  # and its navigation


@pytest.mark.django_db
@pytest.mark.parametrize("name", PUBLIC_PAGES)
def test_public_pages_render_in_the_layout(client, name):
    assert_in_layout(client.get(reverse(name)))


@pytest.mark.django_db
@pytest.mark.parametrize("name", SIGNED_IN_PAGES)
def test_signed_in_pages_render_in_the_layout(client, member, name):
    assert_in_layout(client.get(reverse(name)))


@pytest.mark.django_db
def test_the_home_page_points_to_the_examples_the_admin_and_the_probes(client):
    page = client.get(reverse("home")).content.decode()
    for name in ("admin:index", "login", "healthz", "readyz"):
        assert f'href="{reverse(name)}"' in page
    assert "createsuperuser" in page


@pytest.mark.django_db
def test_pages_say_who_is_signed_in_and_offer_to_sign_out(client, member):
    page = client.get(reverse("home")).content.decode()
    assert "member" in page
    assert f'action="{reverse("logout")}"' in page
    assert client.post(reverse("logout")).status_code == 302
    assert "Sign in" in client.get(reverse("home")).content.decode()


@pytest.mark.django_db
def test_pages_carry_a_strict_content_security_policy(client):
    response = client.get(reverse("home"))
    policy = dict(directive.strip().split(" ", 1) for directive in
                  response["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'self'"
    assert policy["object-src"] == policy["base-uri"] == policy["frame-ancestors"] == "'none'"
    assert "unsafe-inline" not in response["Content-Security-Policy"]
    assert "<script>" not in response.content.decode()  # nothing inline for the policy to block
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
