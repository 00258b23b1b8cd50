"""The scalar types of the software load balancing resources (bounded integers and strict
booleans, as ``controller.core.scalars`` makes every member) and the enumerations several SLB
kinds share."""

from __future__ import annotations

from typing import Annotated

from controller.core.scalars import IntRange, WireBool
from controller.core.values import PORT_MAX
from controller.core.wire import WireEnum

Flag = WireBool
# A TCP/UDP port.
Port = Annotated[int, IntRange(1, PORT_MAX)]
# A port of a load-balancing rule: 0 means every port (only with protocol All).
RulePort = Annotated[int, IntRange(0, PORT_MAX)]
# Minutes a flow without packets stays in the flow tables (MS-NCNBI: 4 to 30).
IdleTimeout = Annotated[int, IntRange(4, 30)]
# Seconds between two probes of one DIP; below NC's 5 so tests and impatient operators can use
# short intervals.
ProbeInterval = Annotated[int, IntRange(1, 300)]
# Consecutive failed probes that mark a DIP down.
ProbeCount = Annotated[int, IntRange(1, 100)]
# A BGP autonomous system number (32-bit, RFC 6793; 0 is reserved).
Asn = Annotated[int, IntRange(1, 2**32 - 1)]


class LbProtocol(WireEnum):
    """The protocol of a load-balancing or NAT rule; ``All`` is TCP and UDP."""

    TCP = "Tcp"
    UDP = "Udp"
    ALL = "All"

    def covers(self) -> frozenset[str]:
        return frozenset({"Tcp", "Udp"}) if self is LbProtocol.ALL else frozenset({self.value})
