from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

{%- if cookiecutter.ipfs == "yes" %}
from {{ cookiecutter.project_slug }}.models import Note, Upload, User
{%- else %}
from {{ cookiecutter.project_slug }}.models import Note, User
{%- endif %}

admin.site.register(User, UserAdmin)


@admin.register(Note)
class NoteAdmin(admin.ModelAdmin):
    list_display = ["title", "id", "author", "created"]
    search_fields = ["id__exact", "title"]
    readonly_fields = ["id", "created"]
    list_select_related = ["author"]
    raw_id_fields = ["author"]  # a text box for the user ID, not a menu of every user
{%- if cookiecutter.ipfs == "yes" %}


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["__str__", "cid", "size", "content_type", "uploaded_by", "created"]
    search_fields = ["id__exact", "cid__exact", "file"]
    readonly_fields = ["id", "cid", "size", "content_type", "created"]
    list_select_related = ["uploaded_by"]
    raw_id_fields = ["uploaded_by"]
{%- endif %}
