"""The gateway's own routes; every other public route is forwarded (`forward.py`)."""

from services.gateway.api import docs, oauth

routers = [docs.router, oauth.router]
