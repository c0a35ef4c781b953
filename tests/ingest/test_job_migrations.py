"""Jobs written before a migration read the same after it."""

import pytest
from django.conf import settings
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("ingest", "0001_initial")]
AFTER = [("ingest", "0002_request_without_file_param")]


def _migrate(targets: list[tuple[str, str]]):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_an_upload_job_no_longer_keeps_its_form_field():
    # given an upload job and a YouTube job as they were stored before
    old = _migrate(BEFORE)
    user = old.get_model(settings.AUTH_USER_MODEL).objects.create(username="alice")
    jobs = old.get_model("ingest", "IngestJob").objects
    details = {"name": "n", "description": "", "transcript": "", "consent": {"method": "attested"}}
    upload = jobs.create(owner=user, kind="upload", request={**details, "file_param": "audio_file"})
    clip = jobs.create(owner=user, kind="youtube", request={**details, "url": "https://x.test/"})

    try:
        # when the database is migrated
        new = _migrate(AFTER)

        # then the upload's request has its details and no field name; the clip's is unchanged
        jobs = new.get_model("ingest", "IngestJob").objects
        assert jobs.get(id=upload.id).request == details
        assert jobs.get(id=clip.id).request == {**details, "url": "https://x.test/"}
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
