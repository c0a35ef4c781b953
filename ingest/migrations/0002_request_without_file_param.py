"""Upload jobs no longer keep the form field their file came in (`file_param`): a problem with
the upload is reported under ingest.audio.UPLOAD_PARAM, and a route that names the field
otherwise renames it. The key is dropped from the jobs that still have it."""

from django.db import migrations


def drop_file_param(apps, schema_editor) -> None:
    IngestJob = apps.get_model("ingest", "IngestJob")
    for job in IngestJob.objects.filter(request__has_key="file_param").only("id", "request"):
        job.request.pop("file_param", None)
        job.save(update_fields=["request"])


class Migration(migrations.Migration):
    dependencies = [("ingest", "0001_initial")]

    operations = [migrations.RunPython(drop_file_param, migrations.RunPython.noop)]
