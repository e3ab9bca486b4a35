import os

from hypothesis import settings

# HYPOTHESIS_PROFILE=ci: many examples, derandomised so a failure reproduces on every run.
settings.register_profile("ci", max_examples=200, derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
