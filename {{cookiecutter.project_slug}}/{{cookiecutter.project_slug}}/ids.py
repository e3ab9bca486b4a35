"""Public IDs: UUIDs stored natively, shown as 22-character short UUIDs.

In the database an ID is a PostgreSQL `uuid` (16 bytes); everywhere else (Python, URLs,
JSON, the admin, forms) it is its short form: base57 in shortuuid's alphabet, which has
no 0/O or 1/I/l look-alikes. `bench/id_storage.py` in the Shipshape template measured the
choices; the table is in README.md ("IDs").

New IDs are time-ordered UUIDs (version 7): 74 random bits, so nobody can guess one or count
rows from it, and in order of creation, so inserts go to the end of the index as they do
with a counter. They do reveal when a row was created (to the millisecond); a model for which
that matters uses `ShortUUIDField(primary_key=True, default=random_id)` (version 4).

Codes that people type (invitation codes) want fewer characters than a UUID has: see
`models.short_uuid_key(length=...)`. IDs are public. Secrets (API keys, tokens) come from
`tokens`, never from here.
"""

import uuid

import shortuuid
from django import forms
from django.core.exceptions import ValidationError
from django.db import models
from uuid6 import uuid7  # the standard library has uuid7 from Python 3.14

ALPHABET = shortuuid.get_alphabet()
FULL_LENGTH = 22  # len(shortuuid.encode(any UUID)): 57**22 > 2**128


def to_uuid(short_id):
    """The UUID a short ID stands for; ValueError for anything that is not one."""
    if not (isinstance(short_id, str) and len(short_id) == FULL_LENGTH
            and set(short_id) <= set(ALPHABET)):
        raise ValueError(f"{short_id!r} is not a short UUID")
    return shortuuid.decode(short_id)  # ValueError above 2**128: 22 letters can say more


def is_well_formed(text, length=FULL_LENGTH):
    """Whether `text` is an ID of `length` characters (of FULL_LENGTH: one that is a UUID)."""
    if length != FULL_LENGTH:
        return isinstance(text, str) and len(text) == length and set(text) <= set(ALPHABET)
    try:
        to_uuid(text)
    except ValueError:
        return False
    return True


def time_ordered_id():
    return shortuuid.encode(uuid7())


def random_id():
    return shortuuid.encode(uuid.uuid4())


class ShortUUIDField(models.UUIDField):
    """A native `uuid` column whose value, in Python and beyond, is the 22-character short form."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", time_ordered_id)
        super().__init__(*args, **kwargs)

    def from_db_value(self, value, expression, connection):
        return None if value is None else shortuuid.encode(value)

    def to_python(self, value):
        """The short form of a short ID, a UUID, or a UUID's usual text; else ValidationError."""
        if value is None or is_well_formed(value):
            return value
        try:
            return shortuuid.encode(value if isinstance(value, uuid.UUID) else uuid.UUID(value))
        except (AttributeError, TypeError, ValueError):
            raise ValidationError(self.error_messages["invalid"], code="invalid",
                                  params={"value": value}) from None

    def get_prep_value(self, value):
        value = models.Field.get_prep_value(self, value)  # resolves lazy values
        return None if value is None else to_uuid(self.to_python(value))

    def get_db_prep_value(self, value, connection, prepared=False):
        return super().get_db_prep_value(
            value if prepared else self.get_prep_value(value), connection, prepared=True)

    def formfield(self, **kwargs):
        return models.Field.formfield(self, **{"form_class": ShortUUIDFormField,
                                               "max_length": FULL_LENGTH, **kwargs})


class ShortUUIDFormField(forms.CharField):
    """Accepts short UUIDs only (the admin's search, too, skips the ID for other text)."""

    default_error_messages = {"invalid": "Enter a valid ID: 22 letters and digits."}

    def to_python(self, value):
        value = super().to_python(value)
        if value not in self.empty_values and not is_well_formed(value):
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return value


class ShortUUIDConverter:
    """URL path converter `<shortuuid:pk>`: matches IDs only, so anything else in that
    place of a URL is a 404 before a view or the database sees it."""

    length = FULL_LENGTH

    @property
    def regex(self):
        # Not an f-string: its doubled braces would read as Jinja in this template file.
        return "[" + ALPHABET + "]{" + str(self.length) + "}"

    def to_python(self, value):
        if not is_well_formed(value, self.length):
            raise ValueError(value)  # the resolver's "no match": a 404
        return value

    def to_url(self, value):
        if not is_well_formed(str(value), self.length):
            raise ValueError(f"{value!r} is not a short UUID of {self.length} characters")
        return str(value)
