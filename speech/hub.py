"""Whether the Hugging Face Hub can be reached: asked once per process, quickly.

The model loaders (CSM, the watermark) ask here before they touch the Hub. Left to itself, the
Hub client asks again for every file and, when a file is not cached, retries with back-off for
half a minute before it gives up; on a server with no way out that is minutes of retries and
warnings at every start. One quick question, remembered, lets every later load go straight to
the local cache (`local_files_only`) and say at once what is missing.
"""

import logging
import threading
import time

logger = logging.getLogger(__name__)

# Long enough for a slow link to answer one HEAD request, short enough that a server without a
# route out starts serving at once.
PROBE_TIMEOUT_SECONDS = 3.0

# A "no" is asked again after this long: a network that was down at start may be back for a
# load that comes later (after an engine reset, say). A "yes" is kept: loads ask the Hub for
# their files anyway.
UNREACHABLE_REMEMBERED_SECONDS = 300.0

# Endpoint → (whether it answered, when it was asked, monotonic). Keyed by endpoint rather than
# a single flag so that the answer always belongs to the HF_ENDPOINT the Hub client uses.
_answers: dict[str, tuple[bool, float]] = {}
_lock = threading.Lock()


def hub_reachable() -> bool:
    """False under HF_HUB_OFFLINE (nothing is asked), else whether the Hub answered when this
    process asked (once; a "no" is asked again after UNREACHABLE_REMEMBERED_SECONDS)."""
    from huggingface_hub import constants

    if constants.is_offline_mode():
        return False
    endpoint = constants.ENDPOINT
    # Under the lock: loaders on two threads at start-up share one question.
    with _lock:
        answer = _answers.get(endpoint)
        now = time.monotonic()
        if answer is None or (not answer[0] and now - answer[1] > UNREACHABLE_REMEMBERED_SECONDS):
            answer = (_probe(endpoint), now)
            _answers[endpoint] = answer
        return answer[0]


def _probe(endpoint: str) -> bool:
    """One HEAD request, no retries: any answer but a server error means the Hub is there."""
    from huggingface_hub.utils import get_session

    try:
        response = get_session().head(
            endpoint, timeout=PROBE_TIMEOUT_SECONDS, follow_redirects=False
        )
    except Exception as exc:  # whatever the transport raises, there is no answer to be had
        logger.info(
            "the Hugging Face Hub (%s) cannot be reached (%s): models load from the local "
            "cache only",
            endpoint,
            type(exc).__name__,
        )
        logger.debug("the Hub probe failed", exc_info=True)
        return False
    if response.status_code >= 500:
        logger.info(
            "the Hugging Face Hub (%s) answered %d: models load from the local cache only",
            endpoint,
            response.status_code,
        )
        return False
    return True
