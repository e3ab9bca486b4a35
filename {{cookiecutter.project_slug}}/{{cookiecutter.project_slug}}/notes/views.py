from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.forms import modelform_factory
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_safe

from {{ cookiecutter.project_slug }}.notes.models import Note

NoteForm = modelform_factory(Note, fields=["title", "body"])


@require_safe
def note_list(request):
    page = Paginator(Note.objects.all(), per_page=50).get_page(request.GET.get("page"))
    return render(request, "notes/note_list.html", {"page": page})


@require_safe
def note_detail(request, pk):
    # The URL converter has already turned away malformed IDs; an unknown one is a 404 here.
    note = get_object_or_404(Note.objects.select_related("author"), pk=pk)
    return render(request, "notes/note_detail.html", {"note": note})


@login_required
@require_http_methods(["GET", "HEAD", "POST"])
def note_create(request):
    """Signed-in users write notes; anyone else is sent to the sign-in page first."""
    form = NoteForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        form.instance.author = request.user
        return redirect(form.save())
    return render(request, "notes/note_form.html", {"form": form, "title": "New note"})
