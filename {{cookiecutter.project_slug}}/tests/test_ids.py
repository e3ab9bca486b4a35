"""Short-UUID IDs: their form, the URL converter, collisions, and the example Note end to end."""

import json
import re
import uuid

import pytest
import shortuuid
from django.contrib.auth import get_user_model
from django.core import serializers
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.forms import ModelChoiceField
from django.urls import Resolver404, resolve, reverse
from hypothesis import example, given
from hypothesis import strategies as st

from {{ cookiecutter.project_slug }} import ids
from {{ cookiecutter.project_slug }}.ids import INSERT_ATTEMPTS, IdCollision, short_uuid_key
from {{ cookiecutter.project_slug }}.models import Note

ID_LETTERS = st.sampled_from(ids.ALPHABET)
well_formed_ids = st.text(ID_LETTERS, min_size=ids.FULL_LENGTH, max_size=ids.FULL_LENGTH)


@given(st.uuids())
def test_every_uuid_round_trips_through_its_short_form(value):
    short = shortuuid.encode(value)
    assert len(short) == ids.FULL_LENGTH
    assert ids.is_well_formed(short)
    assert ids.to_uuid(short) == value
    field = Note._meta.pk
    assert field.to_python(value) == field.to_python(str(value)) == short
    assert field.get_prep_value(short) == value


@given(st.integers(min_value=1, max_value=ids.FULL_LENGTH))
def test_generated_ids_have_the_configured_length_and_alphabet_only(length):
    generated = short_uuid_key(length).get_default()
    assert len(generated) == length
    assert set(generated) <= set(ids.ALPHABET)
    assert ids.is_well_formed(generated, length)


def test_new_ids_are_time_ordered_uuids_and_random_ids_are_version_4():
    made = [ids.time_ordered_id() for _ in range(100)]
    assert [ids.to_uuid(made_id).version for made_id in made] == [7] * 100
    assert sorted(made) == made  # base57 keeps the UUIDs' order: inserts append to the index
    assert ids.to_uuid(ids.random_id()).version == 4


@given(st.text(ID_LETTERS, min_size=ids.FULL_LENGTH, max_size=ids.FULL_LENGTH))
def test_22_letters_are_an_id_exactly_when_they_stand_for_a_uuid(text):
    number = 0
    for letter in text:
        number = number * len(ids.ALPHABET) + ids.ALPHABET.index(letter)
    assert ids.is_well_formed(text) == (number < 2**128)


@given(st.text() | well_formed_ids | st.uuids().map(shortuuid.encode))
@example("0" * 22)
@example("l" * 22)
@example("a" * 21)
@example("a" * 23)
@example("")
def test_the_converter_accepts_exactly_the_well_formed_ids(text):
    converter = ids.ShortUUIDConverter()
    try:
        accepted = re.fullmatch(converter.regex, text) and converter.to_python(text) == text
    except ValueError:  # how a converter says "no match"
        accepted = False
    assert bool(accepted) == ids.is_well_formed(text)
    if accepted:
        assert converter.to_url(text) == text


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


def test_reversing_a_malformed_id_is_refused():
    with pytest.raises(ValueError, match="not a short UUID"):
        ids.ShortUUIDConverter().to_url("not-an-id")


def test_ids_do_not_reveal_order_or_count():
    made = [ids.random_id() for _ in range(1000)]
    assert len(set(made)) == 1000
    assert made != sorted(made)
    # Time-ordered IDs follow creation, but consecutive ones differ in their random bits.
    first, second = ids.to_uuid(ids.time_ordered_id()), ids.to_uuid(ids.time_ordered_id())
    assert abs((second.int & (2**62 - 1)) - (first.int & (2**62 - 1))) > 1


# --- collisions: a generator that repeats itself ---

TAKEN, FRESH, LATER = (shortuuid.encode(uuid.UUID(int=number)) for number in (1, 2, 3))


def draw_ids(monkeypatch, *values):
    """Make the ID generator hand out `values` in turn, as a crowded ID space would."""
    queue = [ids.to_uuid(value) for value in values]
    monkeypatch.setattr(ids, "uuid7", lambda: queue.pop(0))


@pytest.fixture
def taken(db):
    return Note.objects.create(pk=TAKEN, title="the existing note")


@pytest.mark.django_db
def test_a_collision_is_retried_with_a_fresh_id(monkeypatch, taken):
    draw_ids(monkeypatch, TAKEN, FRESH)
    note = Note.objects.create(title="new")
    assert note.pk == FRESH
    assert Note.objects.get(pk=TAKEN).title == "the existing note"


@pytest.mark.django_db
def test_after_three_collisions_a_clear_error_names_the_model_and_length(monkeypatch, taken):
    draw_ids(monkeypatch, *[TAKEN] * INSERT_ATTEMPTS, LATER)
    with transaction.atomic():  # the caller's own transaction
        with pytest.raises(IdCollision, match=r"Could not insert a \w+\.Note: 3 random IDs of 22 "
                                              r"characters were all taken"):
            Note.objects.create(title="unlucky")
        # ...is still usable: each attempt had its own savepoint.
        assert Note.objects.get().title == "the existing note"
        assert Note.objects.create(title="next").pk == LATER


@pytest.mark.django_db
def test_a_chosen_id_that_is_taken_is_refused_not_replaced_or_overwritten(taken):
    with pytest.raises(IntegrityError), transaction.atomic():
        Note.objects.create(pk=taken.pk, title="impostor")
    assert Note.objects.get(pk=taken.pk).title == "the existing note"
    assert Note.objects.count() == 1


@pytest.mark.django_db
def test_saving_an_existing_row_updates_it(taken):
    taken.title = "renamed"
    taken.save()
    assert Note.objects.get(pk=taken.pk).title == "renamed"
    assert Note.objects.count() == 1


@pytest.mark.django_db
def test_other_integrity_errors_are_not_mistaken_for_collisions():
    get_user_model().objects.create(username="ada")
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        get_user_model().objects.create(username="ada")
    assert not isinstance(refused.value, IdCollision)


# --- the example, end to end ---

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
    change = reverse("admin:{{ cookiecutter.project_slug }}_note_change", args=[taken.pk])
    assert admin_client.get(change).status_code == 200
    found = admin_client.get(reverse("admin:{{ cookiecutter.project_slug }}_note_changelist"),
                             {"q": taken.pk})
    assert b"the existing note" in found.content
    by_title = admin_client.get(reverse("admin:{{ cookiecutter.project_slug }}_note_changelist"),
                                {"q": "existing"})  # not an ID: the ID lookup is skipped
    assert b"the existing note" in by_title.content
    users = reverse("admin:{{ cookiecutter.project_slug }}_user_changelist")
    assert admin_client.get(users).status_code == 200


@pytest.mark.django_db
def test_forms_and_json_use_the_short_id(taken):
    field = ModelChoiceField(queryset=Note.objects.all())
    assert field.clean(taken.pk) == taken
    id_field = Note._meta.pk.formfield()
    assert id_field.clean(taken.pk) == taken.pk
    with pytest.raises(ValidationError, match="Enter a valid ID"):
        id_field.clean("z" * 22)
    [serialized] = json.loads(serializers.serialize("json", [taken]))
    assert serialized["pk"] == taken.pk
    [restored] = serializers.deserialize("json", json.dumps([serialized]))
    assert restored.object == taken
