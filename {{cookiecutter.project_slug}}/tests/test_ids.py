"""Short-UUID IDs: their form, the URL converter, collisions (on User, a ShortUUIDModel;
the example Note, end to end, is in notes/tests.py)."""

import json
import re
import uuid

import pytest
import shortuuid
from django.core import serializers
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.forms import ModelChoiceField
from django.urls import reverse
from hypothesis import example, given
from hypothesis import strategies as st

from {{ cookiecutter.project_slug }} import ids
from {{ cookiecutter.project_slug }}.ids import INSERT_ATTEMPTS, IdCollision, short_uuid_key
from {{ cookiecutter.project_slug }}.models import User

ID_LETTERS = st.sampled_from(ids.ALPHABET)
well_formed_ids = st.text(ID_LETTERS, min_size=ids.FULL_LENGTH, max_size=ids.FULL_LENGTH)


@given(st.uuids())
def test_every_uuid_round_trips_through_its_short_form(value):
    short = shortuuid.encode(value)
    assert len(short) == ids.FULL_LENGTH
    assert ids.is_well_formed(short)
    assert ids.to_uuid(short) == value
    field = User._meta.pk
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
    return User.objects.create(pk=TAKEN, username="existing")


@pytest.mark.django_db
def test_a_collision_is_retried_with_a_fresh_id(monkeypatch, taken):
    draw_ids(monkeypatch, TAKEN, FRESH)
    user = User.objects.create(username="new")
    assert user.pk == FRESH
    assert User.objects.get(pk=TAKEN).username == "existing"


@pytest.mark.django_db
def test_after_three_collisions_a_clear_error_names_the_model_and_length(monkeypatch, taken):
    draw_ids(monkeypatch, *[TAKEN] * INSERT_ATTEMPTS, LATER)
    with transaction.atomic():  # the caller's own transaction
        with pytest.raises(IdCollision, match=r"Could not insert a \w+\.User: 3 random IDs of 22 "
                                              r"characters were all taken"):
            User.objects.create(username="unlucky")
        # ...is still usable: each attempt had its own savepoint.
        assert User.objects.get().username == "existing"
        assert User.objects.create(username="next").pk == LATER


@pytest.mark.django_db
def test_a_chosen_id_that_is_taken_is_refused_not_replaced_or_overwritten(taken):
    with pytest.raises(IntegrityError), transaction.atomic():
        User.objects.create(pk=taken.pk, username="impostor")
    assert User.objects.get(pk=taken.pk).username == "existing"
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_saving_an_existing_row_updates_it(taken):
    taken.username = "renamed"
    taken.save()
    assert User.objects.get(pk=taken.pk).username == "renamed"
    assert User.objects.count() == 1


@pytest.mark.django_db
def test_other_integrity_errors_are_not_mistaken_for_collisions():
    User.objects.create(username="ada")
    with pytest.raises(IntegrityError) as refused, transaction.atomic():
        User.objects.create(username="ada")
    assert not isinstance(refused.value, IdCollision)


@pytest.mark.django_db
def test_forms_json_and_the_admin_use_the_short_id(taken, admin_client):
    field = ModelChoiceField(queryset=User.objects.all())
    assert field.clean(taken.pk) == taken
    id_field = User._meta.pk.formfield()
    assert id_field.clean(taken.pk) == taken.pk
    with pytest.raises(ValidationError, match="Enter a valid ID"):
        id_field.clean("z" * 22)
    [serialized] = json.loads(serializers.serialize("json", [taken]))
    assert serialized["pk"] == taken.pk
    [restored] = serializers.deserialize("json", json.dumps([serialized]))
    assert restored.object == taken
    change = reverse("admin:{{ cookiecutter.project_slug }}_user_change", args=[taken.pk])
    assert admin_client.get(change).status_code == 200
