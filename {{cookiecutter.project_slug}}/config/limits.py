"""The site's limits on what one client may send or ask for (docs/pages.md#limits).

Caddy refuses oversized request bodies first (413, Caddyfile); the upload handler here holds the
same line wherever a request reaches Django another way. Failed sign-ins are counted by
django-axes (config/settings.py), per account and per client address, with the address from
`client_address`; password-reset mails are counted here.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadhandler import FileUploadHandler
from django.db import transaction
from django.utils import timezone

from {{ cookiecutter.project_slug }}.models import LimitCount


def body_limit(request):
    """The largest request body, in bytes, that this request's view accepts: what its
    `body_limit` function returns (a view that takes files sets one), else
    DATA_UPLOAD_MAX_MEMORY_SIZE. The view is resolved before anything reads the body."""
    view = request.resolver_match.func if request.resolver_match else None
    limit = getattr(view, "body_limit", None)
    return limit() if limit else settings.DATA_UPLOAD_MAX_MEMORY_SIZE


class BoundedUploadHandler(FileUploadHandler):
    """First of FILE_UPLOAD_HANDLERS: a multipart body larger than its path accepts is refused
    before any of it is read (by its Content-Length) or, without one, as soon as a file in it
    grows past the limit; either way before a byte of the file reaches memory or /tmp.
    (Django's DATA_UPLOAD_MAX_MEMORY_SIZE bounds the other fields, not files.)"""

    def handle_raw_input(self, input_data, meta, content_length, boundary, encoding=None):
        self.limit = body_limit(self.request)
        if content_length > self.limit:
            raise RequestDataTooBig(f"A request body of {content_length} bytes: "
                                    f"{self.request.path} accepts {self.limit} at most.")

    def receive_data_chunk(self, raw_data, start):
        if start + len(raw_data) > self.limit:
            raise RequestDataTooBig(f"A file over {self.limit} bytes: "
                                    f"{self.request.path} accepts {self.limit} at most.")
        return raw_data

    def file_complete(self, file_size):
        return None  # the next handler (memory, then a temporary file) keeps the file


def client_address(request):
    """The client's IP address, for django-axes. Behind Caddy (the production stacks) that is the
    last entry of X-Forwarded-For: Caddy replaces whatever a client sent in that header with the
    address it sees (it trusts no proxy in front of it), and a proxy in front of Django appends
    its client's address last. Without the header (the development server), the peer's."""
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    return forwarded.rsplit(",", 1)[-1].strip() or request.META.get("REMOTE_ADDR")


def count(key, window):
    """Count one more under `key` and return how many its window holds; the window starts at
    the first and lasts `window`. The row stays locked from read to write, so requests at the
    same moment, in any worker or container, each count."""
    now = timezone.now()
    with transaction.atomic():
        LimitCount.objects.filter(expires__lte=now).delete()  # ended windows, any key
        row, _ = LimitCount.objects.select_for_update().get_or_create(
            key=key, defaults={"expires": now + window})
        row.count += 1
        row.save(update_fields=["count"])
    return row.count


PASSWORD_RESET_WINDOW = timedelta(hours=1)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's password reset, with at most PASSWORD_RESET_LIMIT mails an hour to one address
    and from one client address."""

    def form_valid(self, form):
        counts = [count(f"password-reset:to:{form.cleaned_data['email'].strip().lower()}",
                        PASSWORD_RESET_WINDOW),
                  count(f"password-reset:from:{client_address(self.request)}",
                        PASSWORD_RESET_WINDOW)]
        if max(counts) > settings.PASSWORD_RESET_LIMIT:
            form.add_error(None, "Too many password reset requests for this address or from "
                                 "yours. Please try again in an hour.")
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().form_valid(form)
