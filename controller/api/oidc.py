"""OIDC bearer tokens: JWTs an identity provider signed, checked against the keys it publishes.

The checks (PyJWT does them; we choose what it checks):

* the algorithm is one of a fixed list (``SDNC_OIDC_ALGORITHMS``, asymmetric only), never what
  the token's header says: ``alg: none`` and an HMAC signed with the public key are refused;
* the key is the issuer's, by the token's ``kid``, from its JWKS document (the URL its
  discovery document names, or ``SDNC_OIDC_JWKS_URL``);
* ``exp``, ``iss`` and ``aud`` must be there and right, ``nbf`` and ``iat`` are honoured when
  present (30 s of clock skew);
* the role is the highest role named by the configured claim (a string or a list).

The JWKS is cached for ``cache_seconds``. A token naming a key the cache lacks refetches the
document (the issuer rotated its keys), but at most once per ``refetch_interval``, so tokens
with made-up key ids cannot make the controller hammer the issuer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from controller.core.roles import highest
from controller.service.access import Principal

log = logging.getLogger(__name__)
ASYMMETRIC = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
LEEWAY_SECONDS = 30
FETCH_TIMEOUT = 5.0


@dataclass(frozen=True)
class OidcOptions:
    issuer: str
    audience: str
    role_claim: str = "roles"
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    jwks_url: str | None = None
    cache_seconds: float = 300.0
    refetch_interval: float = 30.0

    def __post_init__(self) -> None:
        unsafe = set(self.algorithms) - ASYMMETRIC
        if unsafe or not self.algorithms:
            raise ValueError(
                f"OIDC algorithms must be asymmetric ones ({', '.join(sorted(ASYMMETRIC))}), "
                f"not {', '.join(sorted(unsafe)) or 'none'}"
            )


class JwksCache:
    def __init__(
        self,
        options: OidcOptions,
        client: httpx.AsyncClient,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.client = client
        self.clock = clock
        self.fetches = 0
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    async def key(self, kid: str | None) -> jwt.PyJWK | None:
        if self._fresh() and (found := self._find(kid)) is not None:
            return found
        async with self._lock:
            found = self._find(kid) if self._fresh() else None
            if found is None and self._may_fetch():
                await self._fetch()
                found = self._find(kid)
        return found

    def _find(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:  # only a lone key may go unnamed
            return next(iter(self._keys.values())) if len(self._keys) == 1 else None
        return self._keys.get(kid)

    def _fresh(self) -> bool:
        fetched = self._fetched_at
        return fetched is not None and self.clock() - fetched < self.options.cache_seconds

    def _may_fetch(self) -> bool:
        fetched = self._fetched_at
        return fetched is None or self.clock() - fetched >= self.options.refetch_interval

    async def _fetch(self) -> None:
        self._fetched_at = self.clock()  # a failed fetch waits its turn like a good one
        self.fetches += 1
        try:
            url = self.options.jwks_url or await self._jwks_url()
            answer = await self.client.get(url, timeout=FETCH_TIMEOUT)
            answer.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(answer.json()).keys
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            log.warning("cannot fetch the OIDC issuer's keys: %s", exc)
            return
        self._keys = {key.key_id or "": key for key in keys}

    async def _jwks_url(self) -> str:
        discovery = self.options.issuer.rstrip("/") + "/.well-known/openid-configuration"
        answer = await self.client.get(discovery, timeout=FETCH_TIMEOUT)
        answer.raise_for_status()
        url = answer.json().get("jwks_uri")
        if not isinstance(url, str):
            raise ValueError(f"{discovery} names no jwks_uri")
        return url


class OidcVerifier:
    def __init__(self, options: OidcOptions, keys: JwksCache) -> None:
        self.options = options
        self.keys = keys

    async def principal(self, token: str) -> Principal | None:
        """Whom the JWT ``token`` authenticates, None if it does not pass every check or
        names no role."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            return None
        key = await self.keys.key(header.get("kid"))
        if key is None:
            return None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=list(self.options.algorithms),
                audience=self.options.audience,
                issuer=self.options.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            log.info("refused an OIDC token: %s", exc)
            return None
        role = highest(claims.get(self.options.role_claim))
        if role is None:
            return None
        name = claims.get("preferred_username") or claims.get("sub") or "unnamed"
        return Principal(f"oidc:{name}", role, "oidc")
