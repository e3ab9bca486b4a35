from django.urls import path

from {{ cookiecutter.project_slug }}.notes import views

# <shortuuid:pk>: the converter config/urls.py registers (ids.ShortUUIDConverter).
urlpatterns = [
    path("notes/", views.note_list, name="note-list"),
    path("notes/new/", views.note_create, name="note-create"),
    path("notes/<shortuuid:pk>/", views.note_detail, name="note-detail"),
]
