"""Settings for the test suite (pyproject.toml's DJANGO_SETTINGS_MODULE): production's, plus
what only tests may have. Production (`csmsite.settings`) has none of it, so no deployment can
turn it on."""

from csmsite.settings import *  # noqa: F403
from csmsite.settings.base import VAR_DIR
from csmsite.settings.storage import DATABASES

# Lets downloads reach a loopback test server (tests turn it on where they serve media).
# Private, link-local, metadata and other non-public addresses stay refused even when it is on.
YOUTUBE_ALLOW_LOOPBACK_FOR_TESTS = False

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # A file, not shared-cache memory, whose table locks fail instead of waiting.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}

# Tests load the CSM engine dozens of times; each load would compile its frame step in the
# background (minutes of CPU). The captured-step tests turn it on where they test it.
CSM_CAPTURE = False
