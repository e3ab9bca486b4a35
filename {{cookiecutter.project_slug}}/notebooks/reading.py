"""Reading time: prototyped in explore_notes.ipynb, then moved here with its tests
(test_reading.py), the way an idea goes from a notebook into code you test."""

import math

WORDS_PER_MINUTE = 200


def reading_minutes(text, words_per_minute=WORDS_PER_MINUTE):
    """Whole minutes it takes to read `text`, every minute started counted; at least 1."""
    return max(1, math.ceil(len(text.split()) / words_per_minute))
