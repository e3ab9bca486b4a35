from django.contrib.auth.models import AbstractUser

from {{ cookiecutter.project_slug }}.ids import ShortUUIDModel


class User(ShortUUIDModel, AbstractUser):
    """The project's user, custom from the first migration so it can grow without pain."""
