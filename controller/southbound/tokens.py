"""Agent tokens: HMAC-SHA256 of the server's instanceId under a deployment-wide secret.

A token names one server, so it cannot be used to fetch another host's policy; every replica
checks it with the secret they share through the database. ``sdnc agent-token SERVER`` prints
it for an operator to hand to that host's agent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

SECRET_NAME = "agent-token-key"


def mint(secret: str, server_instance_id: str) -> str:
    digest = hmac.new(
        secret.encode(), f"agent:{server_instance_id}".encode(), hashlib.sha256
    ).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def verify(secret: str, server_instance_id: str, token: str) -> bool:
    return hmac.compare_digest(mint(secret, server_instance_id), token)
