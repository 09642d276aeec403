"""The connection to NATS JetStream: one per process, kept alive across NATS restarts."""

from __future__ import annotations

import asyncio
import logging

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError

from shared.events import stream_specs

logger = logging.getLogger(__name__)

DUPLICATE_WINDOW_SECONDS = 120.0


class Bus:
    """A lazily connected NATS client: the service starts and takes writes while NATS is down."""

    def __init__(self, url: str, *, name: str, namespace: str = "") -> None:
        self.url = url
        self.name = name
        self.namespace = namespace
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context, connecting (and creating the streams) on first use."""
        async with self._lock:
            if self._js is None:
                nc = await nats.connect(
                    self.url,
                    name=self.name,
                    connect_timeout=2,
                    reconnect_time_wait=0.5,
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                )
                js = nc.jetstream(timeout=5)
                try:
                    await ensure_streams(js, self.namespace)
                except BaseException:
                    await nc.close()
                    raise
                self._nc, self._js = nc, js
            return self._js

    async def close(self) -> None:
        if self._nc is not None:
            try:
                await self._nc.drain()
            except Exception:  # already closed or never reconnected: nothing left to flush
                logger.debug("nats drain failed", exc_info=True)
            self._nc, self._js = None, None


async def ensure_streams(js: JetStreamContext, namespace: str = "") -> None:
    """Create the REGISTRY and LOGBOOK streams if missing; they keep every event, on disk."""
    for spec in stream_specs(namespace):
        config = StreamConfig(
            name=spec.name,
            subjects=spec.subjects,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
        )
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)
