from django.urls import path

from {{ cookiecutter.project_slug }}.uploads import views

# <shortuuid:pk>: the converter config/urls.py registers (ids.ShortUUIDConverter).
urlpatterns = [
    path("healthz/ipfs", views.healthz_ipfs, name="healthz-ipfs"),
    path("uploads/", views.upload_list, name="upload-list"),
    path("uploads/new/", views.upload_create, name="upload-create"),
    path("uploads/<shortuuid:pk>/", views.upload_detail, name="upload-detail"),
]
