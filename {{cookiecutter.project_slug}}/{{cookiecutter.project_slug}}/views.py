from django.apps import apps
from django.db import DatabaseError, connection
from django.http import HttpResponse
from django.shortcuts import render
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe


def app_cards():
    """The home page's card of each installed app that has one (`<label>/home_card.html`):
    adding or deleting an app folder changes the page, without this app naming any."""
    cards = []
    for app in apps.get_app_configs():
        try:
            get_template(name := f"{app.label}/home_card.html")
        except TemplateDoesNotExist:
            continue
        cards.append(name)
    return cards


@require_safe
def home(request):
    """What runs here and where to go next; replace it with your own front page."""
    return render(request, "home.html", {"cards": app_cards()})


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
    needs: a service that only some pages need has a check of its own, so that its outage fails
    those pages, not the whole site."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:
        return HttpResponse("database unreachable\n", content_type="text/plain", status=503)
    return HttpResponse("ok\n", content_type="text/plain")
