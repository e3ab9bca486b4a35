{% if cookiecutter.ipfs == "yes" -%}
from django import forms
from django.conf import settings
{% endif -%}
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import DatabaseError, connection
from django.forms import modelform_factory
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
{%- if cookiecutter.ipfs == "yes" %}
from django.template.defaultfilters import filesizeformat
{%- endif %}
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

{%- if cookiecutter.ipfs == "yes" %}
from {{ cookiecutter.project_slug }}.ipfs import ipfs_storage
from {{ cookiecutter.project_slug }}.models import Note, Upload
{%- else %}
from {{ cookiecutter.project_slug }}.models import Note
{%- endif %}

NoteForm = modelform_factory(Note, fields=["title", "body"])
{%- if cookiecutter.ipfs == "yes" %}


class UploadForm(forms.ModelForm):
    class Meta:
        model = Upload
        fields = ["file"]

    def clean_file(self):
        file = self.cleaned_data["file"]
        if file.size > settings.IPFS_MAX_UPLOAD_SIZE:
            raise forms.ValidationError(
                f"This file is {filesizeformat(file.size)}; the largest accepted is "
                f"{filesizeformat(settings.IPFS_MAX_UPLOAD_SIZE)}.")
        return file
{%- endif %}


@require_safe
def home(request):
    """What runs here and where to go next; replace it with your own front page."""
    return render(request, "home.html")


@never_cache
@require_safe
def healthz(request):
    """Liveness: the process answers. Touches no database, so a database outage
    does not get every web container restarted."""
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
@require_safe
def readyz(request):
    """Readiness: 200 while the database answers, 503 while it does not. Only what every page
    needs{% if cookiecutter.ipfs == "yes" %}: the IPFS node, which only uploads need, has its own check (/healthz/ipfs), so
    that a node away fails uploads, not the whole site{% endif %}."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unreachable\n", content_type="text/plain", status=503)
    return HttpResponse("ok\n", content_type="text/plain")
{%- if cookiecutter.ipfs == "yes" %}


@never_cache
@require_safe
def healthz_ipfs(request):
    """The IPFS node, for monitoring (not a readiness probe: without it only uploads fail): 200
    while it answers its RPC API, 503 saying what is wrong (down, too slow, refused, wrong URL)."""
    problem = ipfs_storage().problem()
    if problem:
        return HttpResponse(f"{problem}\n", content_type="text/plain", status=503)
    return HttpResponse("ok\n", content_type="text/plain")
{%- endif %}


@require_safe
def note_list(request):
    page = Paginator(Note.objects.all(), per_page=50).get_page(request.GET.get("page"))
    return render(request, "{{ cookiecutter.project_slug }}/note_list.html", {"page": page})


@require_safe
def note_detail(request, pk):
    # The URL converter has already turned away malformed IDs; an unknown one is a 404 here.
    note = get_object_or_404(Note.objects.select_related("author"), pk=pk)
    return render(request, "{{ cookiecutter.project_slug }}/note_detail.html", {"note": note})


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def note_create(request):
    """Signed-in users write notes; anyone else is sent to the sign-in page first."""
    form = NoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.instance.author = request.user
        return redirect(form.save())
    return render(request, "{{ cookiecutter.project_slug }}/note_form.html",
                  {"form": form, "title": "New note"})
{%- if cookiecutter.ipfs == "yes" %}


@require_safe
def upload_list(request):
    page = Paginator(Upload.objects.all(), per_page=50).get_page(request.GET.get("page"))
    return render(request, "{{ cookiecutter.project_slug }}/upload_list.html", {"page": page})


@require_safe
def upload_detail(request, pk):
    upload = get_object_or_404(Upload, pk=pk)
    return render(request, "{{ cookiecutter.project_slug }}/upload_detail.html", {"upload": upload})


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def upload_create(request):
    """Signed-in users upload files to IPFS. A node that fails gets a clear error and no row."""
    form = UploadForm(request.POST or None, request.FILES or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        form.instance.uploaded_by = request.user
        try:
            return redirect(form.save())
        except OSError as error:
            form.add_error(None, f"The file was not stored, {error}. Nothing was saved: "
                                 "please try again in a minute.")
            status = 503
    return render(request, "{{ cookiecutter.project_slug }}/upload_form.html",
                  {"form": form, "title": "Upload a file"}, status=status)
{%- endif %}
