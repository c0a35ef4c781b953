"""GET /v1/voice-cloning/jobs/{id}: a cloning job's state, in its documented shape, for its
owner only."""

import uuid

import pytest

from ingest.models import IngestJob
from tests.support.cloning import error_of

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("jobs_run_in_process"),
]


def test_another_user_cannot_read_a_job(api, cloned, as_bob):
    job = IngestJob.objects.get()

    mine = api.get(f"/v1/voice-cloning/jobs/{job.id}")
    theirs = as_bob.get(f"/v1/voice-cloning/jobs/{job.id}")
    nobodys = as_bob.get(f"/v1/voice-cloning/jobs/{uuid.uuid4()}")

    assert mine.status_code == 200, mine.text
    assert theirs.status_code == nobodys.status_code == 404
    assert error_of(theirs)["code"] == error_of(nobodys)["code"] == "job_not_found"


def test_job_state_has_the_documented_shape(api, cloned):
    job = IngestJob.objects.get()

    response = api.get(f"/v1/voice-cloning/jobs/{job.id}")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "id": str(job.id),
        "object": "ingest.job",
        "kind": "upload",
        "status": "succeeded",
        "stage": "done",
        "progress": 100,
        "error": None,
        "voice_id": cloned["id"],
        "created_at": int(job.created.timestamp()),
    }
    assert api.get("/v1/voice-cloning/jobs/not-a-uuid").status_code == 404
