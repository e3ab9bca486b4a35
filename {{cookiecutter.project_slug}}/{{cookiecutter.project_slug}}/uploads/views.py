from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_safe

from {{ cookiecutter.project_slug }}.uploads.models import Upload
from {{ cookiecutter.project_slug }}.uploads.storage import ipfs_storage

# Django's slack over Caddy's limit on the upload page: a file just over IPFS_MAX_UPLOAD_SIZE
# still reaches the form, which says how large it is; anything larger is cut off.
FORM_SLACK = 64 * 1024


def max_upload_size():
    """IPFS_MAX_UPLOAD_SIZE, as config/env.py read it (read here: config names no app)."""
    return settings.ENV["IPFS_MAX_UPLOAD_SIZE"]


class UploadForm(forms.ModelForm):
    class Meta:
        model = Upload
        fields = ["file"]

    def clean_file(self):
        file = self.cleaned_data["file"]
        if file.size > max_upload_size():
            raise forms.ValidationError(
                f"This file is {filesizeformat(file.size)}; the largest accepted is "
                f"{filesizeformat(max_upload_size())}.")
        return file


@require_safe
def upload_list(request):
    page = Paginator(Upload.objects.all(), per_page=50).get_page(request.GET.get("page"))
    return render(request, "uploads/upload_list.html", {"page": page})


@require_safe
def upload_detail(request, pk):
    upload = get_object_or_404(Upload, pk=pk)
    return render(request, "uploads/upload_detail.html", {"upload": upload})


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
    return render(request, "uploads/upload_form.html",
                  {"form": form, "title": "Upload a file"}, status=status)


# The largest request body this view reads (config/limits.py asks the resolved view).
upload_create.body_limit = lambda: max_upload_size() + FORM_SLACK


@never_cache
@require_safe
def healthz_ipfs(request):
    """The IPFS node, for monitoring (not a readiness probe: without it only uploads fail): 200
    while it answers its RPC API, 503 saying what is wrong (down, too slow, refused, wrong URL)."""
    problem = ipfs_storage().problem()
    if problem:
        return HttpResponse(f"{problem}\n", content_type="text/plain", status=503)
    return HttpResponse("ok\n", content_type="text/plain")
