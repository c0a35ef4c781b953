"""The Redis channel layer (what job-progress WebSockets listen on with REDIS_URL set) waits for
an event as long as it takes: its receive blocks on Redis for seconds by design, and a socket
read timeout as short as that wait would fail every WebSocket whose job goes quiet for a while.
"""

import asyncio

import pytest
from channels.layers import get_channel_layer
from django.conf import settings

# Longer than redis-py's default read timeout (5 s) and channels_redis's blocking pop (5 s).
QUIET_SECONDS = 6.5


@pytest.mark.skipif(
    "Redis" not in settings.CHANNEL_LAYERS["default"]["BACKEND"],
    reason="REDIS_URL is not set: the in-memory channel layer has no socket to time out",
)
def test_a_listener_waits_through_a_quiet_spell():
    async def listen() -> dict:
        layer = get_channel_layer()
        channel = await layer.new_channel()

        async def send_later() -> None:
            await asyncio.sleep(QUIET_SECONDS)
            await layer.send(channel, {"type": "job.progress", "stage": "cleaning"})

        sender = asyncio.create_task(send_later())
        try:
            # The bound only stops a test that would otherwise hang.
            return await asyncio.wait_for(layer.receive(channel), QUIET_SECONDS * 4)
        finally:
            await sender
            await layer.close_pools()

    assert asyncio.run(listen()) == {"type": "job.progress", "stage": "cleaning"}
