"""JSON logs with the request ID of the request being served, and the trace it is part of."""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from typing import TextIO

from fastapi import FastAPI
from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.events import uuid7

REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_STATE = "request_id"  # its key in the request's state
request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class _RequestIdFilter(logging.Filter):
    """Note the request ID, and the trace and span IDs while a span is current."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            record.trace_id = format(span.trace_id, "032x")
            record.span_id = format(span.span_id, "016x")
        return True


def log_handler(stream: TextIO, *, json: bool = True) -> logging.Handler:
    """A handler that writes log lines to `stream`, as JSON unless asked otherwise."""
    handler = logging.StreamHandler(stream)
    handler.addFilter(_RequestIdFilter())
    if json:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s %(message)s"))
    return handler


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    """Send every log line to stderr, as JSON unless asked otherwise."""
    handler = log_handler(sys.stderr, json=json)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


class RequestIdMiddleware:
    """Give every request an ID (the caller's if it sent a sane one) and echo it back.

    Pure ASGI and outermost, so that every answer carries it: refusals made by other
    middleware too. The ID is also kept in the request's state for the 500 handler, which
    Starlette runs outside every middleware.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get(REQUEST_ID_HEADER, "")
        value = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else str(uuid7())
        scope.setdefault("state", {})[REQUEST_ID_STATE] = value

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = value
            await send(message)

        token = request_id_var.set(value)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


def current_request_id() -> str | None:
    """The ID of the request being served (None outside a request)."""
    return request_id_var.get()


def install_request_id(app: FastAPI) -> None:
    """Add the request-ID middleware; add it last, so that it wraps every other one."""
    app.add_middleware(RequestIdMiddleware)
