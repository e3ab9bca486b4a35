from datetime import UTC

import shortuuid
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.django import TestCase, from_model

from {{ cookiecutter.project_slug }}.models import User

# Datetimes in UTC, as Django stores them: a local time inside a DST gap has no instant.
utc_datetimes = st.datetimes(timezones=st.just(UTC))
users = from_model(
    User,
    username=st.from_regex(r"\A[\w.@+-]{1,150}\Z"),
    email=st.emails(),
    last_login=st.none() | utc_datetimes,
    date_joined=utc_datetimes,
)


class UserTests(TestCase):
    @given(users)
    def test_a_saved_user_reads_back_unchanged(self, user):
        stored = User.objects.get(pk=user.pk)
        fields = [field.attname for field in User._meta.concrete_fields]
        assert [getattr(stored, name) for name in fields] == [getattr(user, name) for name in fields]

    @given(users)
    def test_ids_are_22_character_short_uuids(self, user):
        assert len(user.pk) == 22
        assert set(user.pk) <= set(shortuuid.get_alphabet())

    def test_ids_follow_creation_order_without_repeating(self):
        made = [User.objects.create(username=f"user{number}").pk for number in range(50)]
        assert made == sorted(made)
        assert len(set(made)) == 50
