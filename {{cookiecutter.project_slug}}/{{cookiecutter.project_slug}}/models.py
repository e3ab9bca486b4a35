from django.contrib.auth.models import AbstractUser
from django.db import models
from shortuuid.django_fields import ShortUUIDField


class ShortUUIDModel(models.Model):
    """A model whose primary key is a random short UUID: 22 characters of base57, 128 bits.

    Unlike a counter, such an ID tells nobody how many rows exist or which come next,
    so it can appear in URLs and APIs as it is.
    """

    id = ShortUUIDField(primary_key=True, editable=False)

    class Meta:
        abstract = True


class User(ShortUUIDModel, AbstractUser):
    """The project's user, custom from the first migration so it can grow without pain."""
