from django.conf import settings
from django.contrib import admin
from django.urls import include, path, register_converter

from config.limits import PasswordResetView
from {{ cookiecutter.project_slug }} import views
from {{ cookiecutter.project_slug }}.ids import ShortUUIDConverter

register_converter(ShortUUIDConverter, "shortuuid")

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    # Django's password reset, with a limit on the mails it sends (config/limits.py).
    path("accounts/password_reset/", PasswordResetView.as_view(), name="password_reset"),
    # Django's sign-in, sign-out, password change and reset views; templates in registration/.
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
{%- if cookiecutter.ipfs == "yes" %}
    path("healthz/ipfs", views.healthz_ipfs, name="healthz-ipfs"),
{%- endif %}
    path("notes/", views.note_list, name="note-list"),
    path("notes/new/", views.note_create, name="note-create"),
    path("notes/<shortuuid:pk>/", views.note_detail, name="note-detail"),
{%- if cookiecutter.ipfs == "yes" %}
    path("uploads/", views.upload_list, name="upload-list"),
    path("uploads/new/", views.upload_create, name="upload-create"),
    path("uploads/<shortuuid:pk>/", views.upload_detail, name="upload-detail"),
{%- endif %}
]

if "debug_toolbar" in settings.INSTALLED_APPS:  # development only: see config/settings.py
    urlpatterns.append(path("__debug__/", include("debug_toolbar.urls")))
