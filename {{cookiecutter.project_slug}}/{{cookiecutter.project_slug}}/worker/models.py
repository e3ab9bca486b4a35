from django.db import models
from django.utils import timezone


class Heartbeat(models.Model):
    """One row per running worker, written every few seconds by its heartbeat thread: a task
    RUNNING on a worker whose row is stale is recovered by another worker."""

    worker_id = models.CharField(max_length=64, primary_key=True)
    started_at = models.DateTimeField()
    beat_at = models.DateTimeField(db_index=True)

    def __str__(self):
        return self.worker_id

    @classmethod
    def beat(cls, worker_id):
        now = timezone.now()
        cls.objects.update_or_create(worker_id=worker_id, defaults={"beat_at": now},
                                     create_defaults={"started_at": now, "beat_at": now})


class Tick(models.Model):
    """A tick of the schedule, taken: inserted in the transaction that enqueues its task, so a
    second worker's insert of the same (task, tick) fails and it enqueues nothing."""

    task_path = models.CharField(max_length=255)
    tick = models.DateTimeField()
    task_result_id = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["task_path", "tick"], name="one_per_tick")]

    def __str__(self):
        return f"{self.task_path} at {self.tick:%Y-%m-%d %H:%M}"
