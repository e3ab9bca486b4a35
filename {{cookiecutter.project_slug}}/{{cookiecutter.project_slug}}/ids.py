"""Public IDs: random short UUIDs that can be shown, typed and put in URLs.

A short UUID is written in base57 (shortuuid's alphabet: no 0/O, 1/I/l look-alikes).
22 characters carry 128 bits, as a UUID does, so an ID neither collides in practice nor
tells anyone how many rows exist or which one comes next. Shorter lengths suit codes that
people type (invitation codes): they collide sooner, which `ShortUUIDModel` absorbs by
retrying the insert with a fresh ID.

IDs are public. For secrets (API keys, tokens) use `tokens`, never an ID.
"""

import shortuuid

ALPHABET = shortuuid.get_alphabet()
FULL_LENGTH = 22  # len(shortuuid.encode(uuid)): the 128 bits of a UUID


def is_well_formed(text, length=FULL_LENGTH):
    return len(text) == length and set(text) <= set(ALPHABET)


class ShortUUIDConverter:
    """URL path converter `<shortuuid:pk>`: matches well-formed IDs only, so anything else
    in that place of a URL is a 404 before a view or the database sees it."""

    length = FULL_LENGTH

    @property
    def regex(self):
        # Not an f-string: its doubled braces would read as Jinja in this template file.
        return "[" + ALPHABET + "]{" + str(self.length) + "}"

    def to_python(self, value):
        return value

    def to_url(self, value):
        if not is_well_formed(str(value), self.length):
            raise ValueError(f"{value!r} is not a short UUID of {self.length} characters")
        return str(value)
