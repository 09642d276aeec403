"""The connection to NATS JetStream: one per process, kept alive across NATS restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable

from nats import errors as nats_errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError

from shared.events import stream_specs

logger = logging.getLogger(__name__)

DUPLICATE_WINDOW_SECONDS = 120.0
_RECONNECT_WAIT_SECONDS = 0.5
_JETSTREAM_TIMEOUT_SECONDS = 5.0


class NatsUnavailable(ConnectionError):
    """NATS cannot be reached right now; try again later."""


class Bus:
    """A lazily connected NATS client: the service starts and takes writes while NATS is down.

    Each call to `jetstream()` while there is no connection makes one attempt bounded by
    `connect_timeout` (nats.py alone would retry the first connection forever). Once
    connected, nats.py reconnects by itself for as long as it takes; after each reconnect
    the streams are made again, in case the server came back without its store.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        namespace: str = "",
        connect_timeout: float = 2.0,
        stream_replicas: int = 1,
    ) -> None:
        self.url = url
        self.name = name
        self.namespace = namespace
        self.stream_replicas = stream_replicas
        self.connect_timeout = connect_timeout
        self._nc: NATS | None = None
        self._js: JetStreamContext | None = None
        self._streams_ready = False
        self._lock = asyncio.Lock()
        self._reconnect_listeners: list[Callable[[], None]] = []

    @property
    def connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    def on_reconnect(self, listener: Callable[[], None]) -> None:
        """Call `listener` each time the connection to NATS comes back."""
        self._reconnect_listeners.append(listener)

    async def jetstream(self) -> JetStreamContext:
        """The JetStream context with the streams in place; NatsUnavailable while NATS is away."""
        async with self._lock:
            if self._nc is not None and self._nc.is_closed:
                self._nc, self._js = None, None
            if self._nc is None:
                self._nc = await self._connect()
                self._js = self._nc.jetstream(timeout=_JETSTREAM_TIMEOUT_SECONDS)
                self._streams_ready = False
            if not self._nc.is_connected:
                raise NatsUnavailable(f"reconnecting to {self.url}")
            assert self._js is not None
            if not self._streams_ready:
                await ensure_streams(self._js, self.namespace, replicas=self.stream_replicas)
                self._streams_ready = True
            return self._js

    async def client(self) -> NATS:
        """The connected client (with the streams in place), as `jetstream()`."""
        await self.jetstream()
        assert self._nc is not None
        return self._nc

    async def ready(self) -> bool:
        """Whether NATS answers with the streams in place; never waits on another's attempt."""
        if self.connected and self._streams_ready:
            return True
        if self._lock.locked():
            return False
        with contextlib.suppress(Exception):
            await self.jetstream()
        return self.connected and self._streams_ready

    async def close(self) -> None:
        """Flush what is buffered and close; stop reconnecting if NATS is away."""
        async with self._lock:
            nc, self._nc, self._js = self._nc, None, None
        if nc is None:
            return
        try:
            await nc.drain()
        except Exception:  # reconnecting or already closed: nothing can be flushed
            logger.debug("nats drain failed", exc_info=True)
        finally:
            if not nc.is_closed:
                await nc.close()

    async def _connect(self) -> NATS:
        nc = NATS()
        try:
            await asyncio.wait_for(
                nc.connect(
                    self.url,
                    name=self.name,
                    connect_timeout=math.ceil(self.connect_timeout),
                    # nats.py annotates this as int but sleeps it: half a second is fine.
                    reconnect_time_wait=_RECONNECT_WAIT_SECONDS,  # type: ignore[arg-type]
                    max_reconnect_attempts=-1,
                    allow_reconnect=True,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                ),
                self.connect_timeout,
            )
        except BaseException as exc:
            await nc.close()
            if isinstance(exc, TimeoutError | OSError):
                raise NatsUnavailable(f"cannot connect to {self.url}") from exc
            raise
        logger.info("connected to nats", extra={"url": self.url})
        return nc

    async def _on_error(self, exc: Exception) -> None:
        # Losing the server and failing to reach it again (every half second while it is
        # away) are reported once, by the disconnected callback: keep them quiet here.
        quiet = isinstance(exc, OSError | TimeoutError | nats_errors.UnexpectedEOF)
        level = logging.DEBUG if quiet else logging.WARNING
        logger.log(level, "nats error: %r", exc)

    async def _on_disconnected(self) -> None:
        if self._nc is not None and self._nc.is_reconnecting:
            logger.warning("disconnected from nats, reconnecting", extra={"url": self.url})

    async def _on_reconnected(self) -> None:
        logger.info("reconnected to nats", extra={"url": self.url})
        self._streams_ready = False
        for listener in self._reconnect_listeners:
            listener()


async def ensure_streams(js: JetStreamContext, namespace: str = "", *, replicas: int = 1) -> None:
    """Create the REGISTRY and LOGBOOK streams if missing; they keep every event, on disk, on
    `replicas` servers of the cluster (3 in production, so a lost server loses nothing)."""
    for spec in stream_specs(namespace):
        config = StreamConfig(
            name=spec.name,
            subjects=spec.subjects,
            storage=StorageType.FILE,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            num_replicas=replicas,
        )
        try:
            await js.add_stream(config)
        except BadRequestError:
            await js.update_stream(config)
