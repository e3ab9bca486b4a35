from django.contrib.auth.models import AbstractUser
from django.db import models

from {{ cookiecutter.project_slug }}.ids import ShortUUIDModel


class User(ShortUUIDModel, AbstractUser):
    """The project's user, custom from the first migration so it can grow without pain."""


class LimitCount(models.Model):
    """How often something limited happened under `key` in the window that ends at `expires`
    (config/limits.py): in the database, so every gunicorn worker and container shares it."""

    key = models.CharField(max_length=320, primary_key=True)  # an email address fits whole
    count = models.PositiveIntegerField(default=0)
    expires = models.DateTimeField(db_index=True)
