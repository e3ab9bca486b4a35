"""Public IDs: UUIDs stored natively, shown as 22-character short UUIDs.

In the database an ID is a PostgreSQL `uuid` (16 bytes); everywhere else (Python, URLs,
JSON, the admin, forms) it is its short form: base57 in shortuuid's alphabet, which has
no 0/O or 1/I/l look-alikes. `bench/id_storage.py` in the Shipshape template measured the
choices; docs/ids.md links the figures.

New IDs are time-ordered UUIDs (version 7): 74 random bits, so nobody can guess one or count
rows from it, and in order of creation, so inserts go to the end of the index as they do
with a counter. They do reveal when a row was created (to the millisecond); a model for which
that matters uses `ShortUUIDField(primary_key=True, default=random_id)` (version 4).

Codes that people type (invitation codes) want fewer characters than a UUID has: see
`short_uuid_key(length=...)`. IDs are public: a secret (API key, token) comes from Python's
`secrets` (`secrets.token_urlsafe(32)`), is stored as a digest and compared with
`hmac.compare_digest`, never from here.
"""

import uuid

import shortuuid
from django import forms
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connections, models, router, transaction
from shortuuid.django_fields import ShortUUIDField as RandomCodeField
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


INSERT_ATTEMPTS = 3  # a fresh random ID per attempt


class IdCollision(IntegrityError):
    """Every attempt to insert a row drew an ID that was already taken."""


def short_uuid_key(length=FULL_LENGTH):
    """A primary key shown as `length` base57 characters. At 22, a UUID stored as such
    (ShortUUIDField); shorter, for codes people type, random characters stored as text."""
    if length == FULL_LENGTH:
        return ShortUUIDField(primary_key=True, editable=False)
    return RandomCodeField(primary_key=True, length=length, editable=False)


class ShortUUIDModel(models.Model):
    """A model whose primary key is a short UUID (the module docstring says which).

    The length is set per model: `id = short_uuid_key(length=8)` for codes people type.
    Inserts are always forced inserts, so an existing row is never overwritten; when a
    generated ID is already taken, the insert is retried with a fresh one, each attempt in
    its own savepoint so the caller's transaction survives. `bulk_create` bypasses this.
    """

    id = short_uuid_key()

    class Meta:
        abstract = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Only an ID this model generated may be replaced: one the caller chose is theirs.
        chose_id = args or {"pk", self._meta.pk.attname} & kwargs.keys()
        self._generated_pk = None if chose_id else self.pk

    def save(self, **kwargs):
        if not self._state.adding or kwargs.get("force_update") or kwargs.get("update_fields"):
            return super().save(**kwargs)
        kwargs |= {"force_insert": True,
                   "using": kwargs.get("using") or router.db_for_write(type(self), instance=self)}
        for attempt in range(1, INSERT_ATTEMPTS + 1):
            try:
                with transaction.atomic(using=kwargs["using"]):
                    return super().save(**kwargs)
            except IntegrityError as error:
                if self.pk != self._generated_pk or not self._collided_on_pk(error, kwargs["using"]):
                    raise
                if attempt == INSERT_ATTEMPTS:
                    raise IdCollision(
                        f"Could not insert a {self._meta.label}: {INSERT_ATTEMPTS} random IDs of "
                        f"{self._id_length()} characters were all taken. "
                        f"Its IDs are too short for its number of rows: make them longer."
                    ) from error
            self.pk = self._generated_pk = self._meta.pk.get_default()

    def _id_length(self):
        return FULL_LENGTH if isinstance(self._meta.pk, ShortUUIDField) else self._meta.pk.length

    def _collided_on_pk(self, error, using):
        """Whether the insert failed on the primary key's unique constraint, not another."""
        constraint = getattr(getattr(error.__cause__, "diag", None), "constraint_name", None)
        connection = connections[using]
        with connection.cursor() as cursor:
            constraints = connection.introspection.get_constraints(cursor, self._meta.db_table)
        return constraints.get(constraint, {}).get("primary_key", False)
