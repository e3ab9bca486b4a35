import contextlib
import logging
import mimetypes

from django.conf import settings
from django.db import connections, models, router, transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.urls import reverse

from {{ cookiecutter.project_slug }}.ids import ShortUUIDModel
from {{ cookiecutter.project_slug }}.uploads.storage import ipfs_storage

logger = logging.getLogger(__name__)


class Upload(ShortUUIDModel):
    """A file kept on IPFS (docs/ipfs.md): saving the row first adds and pins the file
    on the node, so a row always has its content. Rows with the same content share one CID,
    stored once; deleting the last of them unpins it and has the node collect it, so the site
    no longer serves it."""

    file = models.FileField(storage=ipfs_storage, max_length=255)
    cid = models.CharField("CID", max_length=100, db_index=True, editable=False)
    size = models.PositiveBigIntegerField(editable=False)
    content_type = models.CharField(max_length=255, editable=False)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                    null=True, blank=True, related_name="uploads")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self):
        return self.file.name.partition("/")[2]

    def get_absolute_url(self):
        return reverse("upload-detail", kwargs={"pk": self.pk})

    def save(self, **kwargs):
        if self.file and not self.file._committed:
            using = kwargs.get("using") or router.db_for_write(type(self), instance=self)
            upload = self.file.file
            self.content_type = getattr(upload, "content_type", None) \
                or mimetypes.guess_type(self.file.name)[0] or "application/octet-stream"
            try:
                with transaction.atomic(using=using):
                    _lock_pins(using, shared=True)  # until the row is committed: see release()
                    storage = self.file.storage
                    name = storage.get_available_name(self.file.name,
                                                      max_length=self.file.field.max_length)
                    self.cid = storage.add(name, upload)  # OSError: the node failed
                    # A name string: the file is stored, FileField saves nothing more.
                    self.file, self.size = storage.stored_name(self.cid, name), upload.size
                    return super().save(**kwargs)
            except Exception:
                if self.cid:
                    with contextlib.suppress(Exception):  # the database's error is the one to see
                        self.release(self.cid, using)  # no row, so no pin that nothing references
                raise
        return super().save(**kwargs)

    @classmethod
    def release(cls, cid, using=None):
        """Once no row references a CID: unpin it, then collect the node's garbage, so that the
        node no longer holds, serves or announces it. A node that fails keeps the content (not
        lost), which the log reports; the next collection takes what was unpinned."""
        using = using or router.db_for_write(cls)
        with transaction.atomic(using=using):
            # Alone while it counts and unpins: an upload of the same bytes in flight has pinned
            # them again and will reference them, so it waits for its row to be committed.
            _lock_pins(using, shared=False)
            if cls.objects.using(using).filter(cid=cid).exists():
                return
            try:
                ipfs_storage().unpin(cid)
            except OSError as error:
                logger.warning("%s stays pinned: %s", cid, error)
                return
        # Outside the lock: collection can take a while on a large node, and it cannot take
        # what uploads add meanwhile (Kubo adds and pins them under its own GC lock).
        try:
            removed = ipfs_storage().collect()
        except OSError as error:
            logger.warning("%s is unpinned but not collected yet: %s", cid, error)
        else:
            logger.info("%s unpinned; garbage collection removed %d blocks", cid, removed)


# The PostgreSQL advisory lock that orders pins against rows: a 64-bit number this database
# uses for nothing else.
PINS_LOCK = int.from_bytes(b"ipfspins")


def _lock_pins(using, shared):
    """Until the end of the current transaction: shared by uploads being saved, alone for a
    release (Upload.release)."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT pg_advisory_xact_lock{'_shared' if shared else ''}(%s)",
                       [PINS_LOCK])


@receiver(post_delete, sender=Upload)
def unpin_unreferenced(sender, instance, using, **kwargs):
    """After any delete (the admin's bulk one too), once it is committed."""
    transaction.on_commit(lambda: Upload.release(instance.cid, using), using=using)
