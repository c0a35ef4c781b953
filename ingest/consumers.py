"""Live job progress over a WebSocket, for the job's owner only, and only while the key or
session that opened it still signs the owner in."""

import asyncio
import contextlib
import uuid

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer

from accounts.websocket import still_signed_in
from ingest.models import IngestJob
from ingest.progress import job_event, job_group

# Close codes: 4401 not authenticated, 4404 no such job (or not yours).
_UNAUTHENTICATED = 4401
_NOT_FOUND = 4404
# How often an idle socket asks whether its credential still holds (each message asks too).
RECHECK_SECONDS = 15.0


class JobProgressConsumer(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self._refuse(_UNAUTHENTICATED)
            return
        job = await _owned_job(self.scope["url_route"]["kwargs"]["job_id"], user)
        if job is None:
            await self._refuse(_NOT_FOUND)
            return
        self.group = job_group(job.id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # The state now, then every change; a job already finished ends the conversation.
        event = await database_sync_to_async(_fresh_event)(job.id)
        if event is None:  # deleted meanwhile
            await self.close(code=_NOT_FOUND)
            return
        await self.send_json(event)
        if event["status"] in {IngestJob.Status.SUCCEEDED, IngestJob.Status.FAILED}:
            await self.close()
            return
        self.watch = asyncio.create_task(self._close_when_signed_out())

    async def _refuse(self, code: int) -> None:
        # A close before the handshake completes reaches the client as a bare HTTP 403: accept
        # first, so that the client gets the close code that says why.
        await self.accept()
        await self.close(code=code)

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "watch"):
            self.watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.watch
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def _close_when_signed_out(self) -> None:
        """Between messages: close once the key is revoked or the session has ended."""
        while True:
            await asyncio.sleep(RECHECK_SECONDS)
            if not await still_signed_in(self.scope):
                await self._close_once(_UNAUTHENTICATED)
                return

    async def job_update(self, message: dict) -> None:
        if getattr(self, "closing", False):
            return
        if not await still_signed_in(self.scope):
            await self._close_once(_UNAUTHENTICATED)
            return
        await self.send_json(message["job"])
        if message["job"]["status"] in {IngestJob.Status.SUCCEEDED, IngestJob.Status.FAILED}:
            await self._close_once(1000)

    async def _close_once(self, code: int) -> None:
        # Updates can still arrive between the close and the disconnect; a second close
        # would be an error from the server.
        if not getattr(self, "closing", False):
            self.closing = True
            await self.close(code=code)


@database_sync_to_async
def _owned_job(job_id: str, user) -> IngestJob | None:
    try:
        job_uuid = uuid.UUID(job_id)
    except ValueError:
        return None
    return IngestJob.objects.filter(id=job_uuid, owner=user).first()


def _fresh_event(job_id: uuid.UUID) -> dict | None:
    job = IngestJob.objects.filter(id=job_id).first()
    return None if job is None else job_event(job)
