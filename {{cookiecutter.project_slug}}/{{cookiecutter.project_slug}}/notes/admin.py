from django.contrib import admin

from {{ cookiecutter.project_slug }}.notes.models import Note


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ["title", "id", "author", "created"]
    search_fields = ["id__exact", "title"]
    readonly_fields = ["id", "created"]
    list_select_related = ["author"]
    raw_id_fields = ["author"]  # a text box for the user ID, not a menu of every user
