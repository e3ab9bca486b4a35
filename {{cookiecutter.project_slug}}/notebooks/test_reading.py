import string

from hypothesis import given
from hypothesis import strategies as st

from reading import reading_minutes  # beside this file: pytest puts notebooks/ on sys.path

words = st.text(string.ascii_letters + "éß'-", min_size=1, max_size=12)


def test_an_empty_text_still_takes_a_minute():
    assert reading_minutes("") == 1


def test_a_started_minute_counts():
    assert reading_minutes("word " * 200) == 1
    assert reading_minutes("word " * 201) == 2


@given(st.lists(words, max_size=2000), st.integers(1, 500), st.sampled_from([" ", "\n", " \t "]))
def test_minutes_cover_the_words_with_less_than_a_minute_to_spare(text, rate, separator):
    minutes = reading_minutes(separator.join(text), words_per_minute=rate)
    assert (minutes - 1) * rate < max(len(text), 1) <= minutes * rate
