from django.contrib import admin
from django.urls import path, register_converter

from {{ cookiecutter.project_slug }} import views
from {{ cookiecutter.project_slug }}.ids import ShortUUIDConverter

register_converter(ShortUUIDConverter, "shortuuid")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("notes/", views.note_list, name="note-list"),
    path("notes/<shortuuid:pk>/", views.note_detail, name="note-detail"),
]
