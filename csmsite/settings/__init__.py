"""Settings for the speech server, read from the environment (and a `.env` file).

With nothing set this is the embedded default: SQLite and files under `var/`, an in-memory
channel layer, eager Celery tasks and a local-memory cache. `DATABASE_URL` and `REDIS_URL`
switch the same code to Postgres and Redis. Every variable is listed in the README.

One module per concern; this package is what DJANGO_SETTINGS_MODULE names in production.
The test suite runs with `csmsite.settings.test`, which adds the switches only tests may turn.
Each module imports what it needs from the others, so the order below does not matter.
"""

from csmsite.settings.base import *  # noqa: F403
from csmsite.settings.cloning import *  # noqa: F403
from csmsite.settings.observability import *  # noqa: F403
from csmsite.settings.security import *  # noqa: F403
from csmsite.settings.speech import *  # noqa: F403
from csmsite.settings.storage import *  # noqa: F403
