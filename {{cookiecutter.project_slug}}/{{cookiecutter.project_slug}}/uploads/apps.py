from django.apps import AppConfig


class UploadsConfig(AppConfig):
    """Files on IPFS (docs/ipfs.md): the storage, the Upload model and its pages."""

    name = "{{ cookiecutter.project_slug }}.uploads"
    label = "uploads"
