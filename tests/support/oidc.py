"""A local OIDC issuer for tests: its discovery document and JWKS served over HTTP by uvicorn
in the test's event loop, and JWTs signed with its key (or with a key it does not publish)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from controller.settings import Settings
from tests.support.secure import tls_server

AUDIENCE = "sdnc-tests"
KEY_ID = "issuer-key-1"


class Issuer:
    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.url = ""
        self.jwks_requests = 0

    def jwks(self) -> dict[str, Any]:
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": KEY_ID, "use": "sig", "alg": "RS256"}]}

    def token(
        self,
        *,
        roles: object = "reader",
        audience: str = AUDIENCE,
        issuer: str | None = None,
        lifetime: float = 300,
        not_before: float | None = None,
        unpublished: bool = False,
        subject: str = "alice",
    ) -> str:
        now = time.time()
        claims: dict[str, Any] = {
            "iss": self.url if issuer is None else issuer,
            "aud": audience,
            "sub": subject,
            "iat": int(now),
            "exp": int(now + lifetime),
            "roles": roles,
        }
        if not_before is not None:
            claims["nbf"] = int(now + not_before)
        key = self.stranger if unpublished else self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": KEY_ID})

    def unsigned(self, *, roles: object = "admin") -> str:
        """``alg: none``: a token anyone can make."""
        claims = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "mallory",
            "exp": int(time.time() + 300),
            "roles": roles,
        }
        return jwt.encode(claims, None, algorithm="none", headers={"kid": KEY_ID})

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/.well-known/openid-configuration":
            body: dict[str, Any] = {"issuer": self.url, "jwks_uri": f"{self.url}/jwks"}
        elif scope["path"] == "/jwks":
            self.jwks_requests += 1
            body = self.jwks()
        else:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        data = json.dumps(body).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": data})


@contextlib.asynccontextmanager
async def running_issuer() -> AsyncIterator[Issuer]:
    issuer = Issuer()
    async with tls_server(issuer, Settings(), None) as port:
        issuer.url = f"http://127.0.0.1:{port}"
        yield issuer
