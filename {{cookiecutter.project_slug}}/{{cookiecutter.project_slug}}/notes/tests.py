"""The example app end to end: short-ID URLs, pages, the form, the admin. Delete it with the app."""

import uuid

import pytest
import shortuuid
from django.urls import Resolver404, resolve, reverse
from hypothesis import given
from hypothesis import strategies as st

from {{ cookiecutter.project_slug }} import ids
from {{ cookiecutter.project_slug }}.notes.models import Note

TAKEN, FRESH = (shortuuid.encode(uuid.UUID(int=number)) for number in (1, 2))


@pytest.fixture
def taken(db):
    return Note.objects.create(pk=TAKEN, title="the existing note")


@pytest.fixture
def member(django_user_model):
    return django_user_model.objects.create_user("member", "member@example.com",
                                                 "a-long-passphrase")


@given(st.text(max_size=30))
def test_a_url_with_anything_but_a_well_formed_id_resolves_to_nothing(text):
    path = f"/notes/{text}/"
    try:
        match = resolve(path)
    except Resolver404:
        assert not ids.is_well_formed(text)
    else:
        assert ids.is_well_formed(text)
        assert match.kwargs == {"pk": text}


@pytest.mark.django_db
def test_a_note_is_found_by_its_short_id(client, taken):
    response = client.get(f"/notes/{taken.pk}/")
    assert response.status_code == 200
    assert b"the existing note" in response.content
    assert reverse("note-detail", kwargs={"pk": taken.pk}) == taken.get_absolute_url()


@pytest.mark.django_db
@pytest.mark.parametrize("path", [
    f"/notes/{FRESH}/",  # well formed, unknown
    f"/notes/{TAKEN[1:]}/",  # too short
    "/notes/" + "0" * 22 + "/",  # not in the alphabet
    "/notes/" + "z" * 22 + "/",  # in the alphabet, but more than 128 bits
    f"/notes/{ids.to_uuid(TAKEN)}/",  # the UUID's usual form: IDs have one spelling in URLs
    "/notes/12345/",  # a guessed counter
])
def test_an_unknown_or_malformed_id_is_a_404(client, taken, path):
    assert client.get(path).status_code == 404


@pytest.mark.django_db
def test_the_list_links_every_note(client, taken):
    response = client.get("/notes/")
    assert response.status_code == 200
    assert taken.get_absolute_url().encode() in response.content


@pytest.mark.django_db
def test_the_admin_works_with_short_ids(admin_client, taken):
    change = reverse("admin:notes_note_change", args=[taken.pk])
    assert admin_client.get(change).status_code == 200
    found = admin_client.get(reverse("admin:notes_note_changelist"),
                             {"q": taken.pk})
    assert b"the existing note" in found.content
    by_title = admin_client.get(reverse("admin:notes_note_changelist"),
                                {"q": "existing"})  # not an ID: the ID lookup is skipped
    assert b"the existing note" in by_title.content


@pytest.mark.django_db
def test_the_pages_render_in_the_layout_and_the_home_page_has_the_apps_card(client, member, taken):
    for url in (reverse("note-list"), taken.get_absolute_url()):
        assert client.get(url).content.decode().count("<h1>") == 1
    home = client.get(reverse("home")).content.decode()
    for name in ("note-list", "note-create"):
        assert f'href="{reverse(name)}"' in home
    client.force_login(member)
    assert client.get(reverse("note-create")).status_code == 200


@pytest.mark.django_db
def test_writing_a_note_asks_for_sign_in_first_then_records_the_author(client, member):
    form = reverse("note-create")
    assert client.get(form)["Location"] == f"{reverse('login')}?next={form}"
    response = client.post(reverse("login"), {
        "username": "member", "password": "a-long-passphrase", "next": form})
    assert response["Location"] == form
    response = client.post(form, {"title": "First", "body": "Written on the site."})
    note = Note.objects.get()
    assert response["Location"] == note.get_absolute_url()
    assert (note.title, note.author) == ("First", member)


@pytest.mark.django_db
def test_anonymous_visitors_see_no_user_names(client, member):
    page = Note.objects.create(title="Hello", body="Text.", author=member).get_absolute_url()
    assert "member" not in client.get(page).content.decode()
    client.force_login(member)
    assert "by member" in client.get(page).content.decode()
