from django.conf import settings
from django.db import models
from django.urls import reverse

from {{ cookiecutter.project_slug }}.ids import ShortUUIDModel


class Note(ShortUUIDModel):
    """An example of the pattern end to end: short-ID model, admin, views, URLs and tests."""

    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    # Who wrote it on the site (notes/new/); none for notes added in the admin.
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True,
                               blank=True, related_name="notes")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.title

    def get_absolute_url(self):
        return reverse("note-detail", kwargs={"pk": self.pk})
