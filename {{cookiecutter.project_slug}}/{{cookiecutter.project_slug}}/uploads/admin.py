from django.contrib import admin

from {{ cookiecutter.project_slug }}.uploads.models import Upload


@admin.register(Upload)
class UploadAdmin(admin.ModelAdmin):
    list_display = ["__str__", "cid", "size", "content_type", "uploaded_by", "created"]
    search_fields = ["id__exact", "cid__exact", "file"]
    readonly_fields = ["id", "cid", "size", "content_type", "created"]
    list_select_related = ["uploaded_by"]
    raw_id_fields = ["uploaded_by"]
