"""A job's waiting upload goes with the job."""

from django.db.models.signals import post_delete
from django.dispatch import receiver

from ingest.models import IngestJob
from voices.signals import delete_files_on_commit


@receiver(post_delete, sender=IngestJob)
def job_deleted(sender, instance: IngestJob, **kwargs) -> None:
    delete_files_on_commit(instance.input_audio)
