from django.core.paginator import Paginator
from django.db import DatabaseError, connection
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from {{ cookiecutter.project_slug }}.models import Note


@never_cache
@require_safe
def healthz(request):
    """Liveness: the process answers. Touches no database, so a database outage
    does not get every web container restarted."""
    return HttpResponse("ok\n", content_type="text/plain")


@never_cache
@require_safe
def readyz(request):
    """Readiness: 200 while the database answers, 503 while it does not."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unreachable\n", content_type="text/plain", status=503)
    return HttpResponse("ok\n", content_type="text/plain")


@require_safe
def note_list(request):
    page = Paginator(Note.objects.all(), per_page=50).get_page(request.GET.get("page"))
    return render(request, "{{ cookiecutter.project_slug }}/note_list.html", {"page": page})


@require_safe
def note_detail(request, pk):
    # The URL converter has already turned away malformed IDs; an unknown one is a 404 here.
    note = get_object_or_404(Note, pk=pk)
    return render(request, "{{ cookiecutter.project_slug }}/note_detail.html", {"note": note})
