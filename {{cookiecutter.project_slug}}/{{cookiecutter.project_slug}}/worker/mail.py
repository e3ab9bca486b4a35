"""Mail sent by the worker: pages hand a message to a task and return before any SMTP server
answers; the task sends it with the mailer EMAIL_URL names, retried if that fails.

settings.MAILERS["default"] is `QueuedMailBackend`, which enqueues `send_mail` with each
message as JSON (the task's arguments are stored in the database): its RFC 5322 bytes in
base64, and the envelope (sender, every recipient, Bcc included).
"""

import base64
import email
import email.policy

from django.core.mail import EmailMessage, mailers
from django.core.mail.backends.base import BaseEmailBackend
from django.tasks import task

from {{ cookiecutter.project_slug }}.worker.retries import retry


class QueuedMailBackend(BaseEmailBackend):
    """Enqueues each message for `send_mail`, to go through the mailer `mailer` (an alias in
    MAILERS)."""

    def __init__(self, *, mailer, **options):
        super().__init__(**options)
        self.mailer = mailer

    def send_messages(self, email_messages):
        for message in email_messages:
            send_mail.enqueue(
                message=base64.b64encode(message.message().as_bytes()).decode("ascii"),
                sender=message.from_email, recipients=message.recipients(), mailer=self.mailer)
        return len(email_messages)


class PreparedMessage(EmailMessage):
    """A message already rendered: its bytes and its envelope, as a mail backend sends them."""

    def __init__(self, raw, sender, recipients):
        super().__init__(from_email=sender)
        self.raw, self.envelope = raw, recipients
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        self.subject, self.to = parsed["Subject"] or "", [str(to) for to in parsed.get_all("To", [])]

    def message(self, *, policy=email.policy.default):
        return email.message_from_bytes(self.raw, policy=policy)

    def recipients(self):
        return self.envelope


@retry(attempts=5, backoff=4.0)
@task
def send_mail(*, message, sender, recipients, mailer):
    """Send a message QueuedMailBackend enqueued; an SMTP error fails the attempt (retried)."""
    prepared = PreparedMessage(base64.b64decode(message), sender, recipients)
    return mailers[mailer].send_messages([prepared])
