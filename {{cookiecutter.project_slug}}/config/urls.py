from django.conf import settings
from django.contrib import admin
from django.urls import include, path, register_converter

from config.limits import PasswordResetView
from {{ cookiecutter.project_slug }} import views
from {{ cookiecutter.project_slug }}.ids import ShortUUIDConverter

register_converter(ShortUUIDConverter, "shortuuid")  # before the apps' urls use it

urlpatterns = [
    path("", views.home, name="home"),
    path("admin/", admin.site.urls),
    # Django's password reset, with a limit on the mails it sends (config/limits.py).
    path("accounts/password_reset/", PasswordResetView.as_view(), name="password_reset"),
    # Django's sign-in, sign-out, password change and reset views; templates in registration/.
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    # Each app's own pages (the example: delete its line and its folder together).
    path("", include("{{ cookiecutter.project_slug }}.notes.urls")),
{%- if cookiecutter.ipfs == "yes" %}
    path("", include("{{ cookiecutter.project_slug }}.uploads.urls")),
{%- endif %}
]

if "debug_toolbar" in settings.INSTALLED_APPS:  # development only: see config/settings.py
    urlpatterns.append(path("__debug__/", include("debug_toolbar.urls")))
