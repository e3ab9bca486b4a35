"""Run by every notebook kernel before its first cell, through PYTHONSTARTUP (set by the
notebook image, docs/notebooks.md's command and test_notebooks.py): the settings are loaded and
django.setup() is done, so a notebook imports and queries the models at once (the example's
are imported already, as `manage.py shell` does)."""


def _set_up_django():
    import os
    import sys
    from pathlib import Path

    import django

    # Kernels start in the notebook's directory: the project root makes `config` and the app
    # importable. (IPython gives a startup file no __file__; PYTHONSTARTUP names this one.)
    sys.path.insert(0, str(Path(os.environ["PYTHONSTARTUP"]).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    # Jupyter runs every cell inside an asyncio event loop, where Django refuses synchronous
    # ORM calls: in a server they would block every other request. A kernel serves no one
    # else, so it may block: allowed here, in the kernel's own process only.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    django.setup()


_set_up_django()
del _set_up_django

from {{ cookiecutter.project_slug }}.models import User  # noqa: E402, F401 - in the kernel's namespace
from {{ cookiecutter.project_slug }}.notes.models import Note  # noqa: E402, F401
