"""What the HTTP server allows a connection, and the count of open connections it keeps.

``HttpLimits`` is built from the settings by the composition root (``controller/server.py``);
``Admission`` counts the open connections of one server, in all and per client address, so
that ``controller/api/connection.py`` can refuse one over either cap the moment it is
accepted. A connection holds its ``Slot`` for as long as it is open, through an upgrade to
the agent channel's WebSocket.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from controller.errors import ControllerError, ServiceUnavailable, TooManyConnections


@dataclass(frozen=True)
class HttpLimits:
    # Seconds from the connection (or a request's first byte) to the end of its headers.
    header_timeout: float
    # Seconds from the end of the headers to the end of the body.
    body_timeout: float
    max_url_bytes: int
    # One header field: name and value.
    max_header_bytes: int
    max_headers: int
    # The request line and all header fields together.
    max_head_bytes: int
    max_connections: int
    # 0: no cap per address.
    max_connections_per_address: int


class Slot:
    """One admitted connection; ``release`` (idempotent) gives its place back."""

    def __init__(self, admission: Admission, address: str | None) -> None:
        self._admission = admission
        self.address = address
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._admission._forget(self.address)


class Admission:
    """The open connections of one server, counted in all and per client address."""

    def __init__(self, max_connections: int, max_per_address: int) -> None:
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.open = 0
        self._by_address: Counter[str] = Counter()

    def admit(self, address: str | None) -> Slot | ControllerError:
        """A slot for a new connection from ``address``, or the error it is refused with."""
        if self.open >= self.max_connections:
            return ServiceUnavailable(
                f"the controller is at its limit of {self.max_connections} open connections; "
                "try again later"
            )
        if (
            address is not None
            and self.max_per_address
            and self._by_address[address] >= self.max_per_address
        ):
            return TooManyConnections(
                f"{address} already has {self.max_per_address} open connections to the "
                "controller; reuse them or close some"
            )
        self.open += 1
        if address is not None:
            self._by_address[address] += 1
        return Slot(self, address)

    def held_by(self, address: str) -> int:
        return self._by_address[address]

    def _forget(self, address: str | None) -> None:
        self.open -= 1
        if address is not None:
            self._by_address[address] -= 1
            if not self._by_address[address]:
                del self._by_address[address]
