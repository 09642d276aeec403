"""Problems only the gateway answers: upstream failures and the rate limit."""

from __future__ import annotations

from shared.errors import PinpointError


class TooManyRequests(PinpointError):
    status, slug, title = 429, "rate-limited", "Too many requests"


class BadGateway(PinpointError):
    status, slug, title = 502, "bad-gateway", "A service gave no valid answer"


class GatewayTimeout(PinpointError):
    status, slug, title = 504, "gateway-timeout", "A service did not answer in time"
