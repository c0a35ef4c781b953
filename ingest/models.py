"""Ingest jobs: the state of one cloning request while it is worked on in the background."""

import uuid

from django.conf import settings
from django.db import models

from voices.models import Voice


def job_input_key(job: "IngestJob", filename: str) -> str:
    """Where an upload waits for its job: a server-chosen key, never the client's file name."""
    return f"ingest/{job.id}/input"


class IngestJob(models.Model):
    class Kind(models.TextChoices):
        UPLOAD = "upload", "Upload"
        YOUTUBE = "youtube", "YouTube"

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="ingest_jobs"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    stage = models.CharField(max_length=32, default="queued")
    progress = models.PositiveSmallIntegerField(default=0)
    # What the caller can be told: a validation message, never a traceback or a path.
    error = models.TextField(blank=True)
    error_code = models.CharField(max_length=64, blank=True)
    # The request field the error is about, when there is one.
    error_param = models.CharField(max_length=64, blank=True)
    # The voice's name, description, transcript, consent and, for YouTube, URL and section.
    request = models.JSONField(default=dict)
    input_audio = models.FileField(upload_to=job_input_key, blank=True)
    voice = models.OneToOneField(
        Voice, null=True, blank=True, on_delete=models.SET_NULL, related_name="ingest_job"
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created"]
        indexes = [models.Index(fields=["owner", "status"])]

    def __str__(self) -> str:
        return f"{self.kind} job {self.id} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in {self.Status.SUCCEEDED, self.Status.FAILED}
