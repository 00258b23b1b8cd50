"""``controller/api/connection.py`` extends uvicorn internals (its httptools protocol, the
request cycle, the websockets-sansio protocol). These checks fail loudly when those move, so
that upgrading uvicorn is a deliberate act: pyproject.toml pins the range they were checked
against; widen it only after these pass (and the HTTP and chaos tests with them).
"""

from __future__ import annotations

import hashlib
import inspect
from importlib.metadata import requires, version

from packaging.requirements import Requirement
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from controller.api.connection import EXTENDED, check_uvicorn

# The uvicorn method GuardedHttpProtocol.data_received replaces, as it was when the override was
# written (0.51 to 0.55): if uvicorn changes it, the override must be brought up to date.
REPLACED = {"data_received": "010a7ae59a5d3b1a"}


def test_the_installed_uvicorn_is_in_the_pinned_range() -> None:
    pinned = next(
        Requirement(line)
        for line in requires("sdn-controller") or []
        if Requirement(line).name == "uvicorn"
    )
    assert pinned.specifier.contains(version("uvicorn")), (version("uvicorn"), pinned)


def test_the_methods_the_protocols_extend_are_there() -> None:
    check_uvicorn()
    parameters = {
        "on_url": ["self", "url"],
        "on_header": ["self", "name", "value"],
        "on_message_begin": ["self"],
        "on_headers_complete": ["self"],
        "on_message_complete": ["self"],
        "handle_websocket_upgrade": ["self"],
        "connection_lost": ["self", "exc"],
    }
    for name, expected in parameters.items():
        assert name in EXTENDED[HttpToolsProtocol]
        assert list(inspect.signature(getattr(HttpToolsProtocol, name)).parameters) == expected


def test_the_attributes_the_protocols_use_are_uvicorns() -> None:
    uses = {
        HttpToolsProtocol.__init__: (
            "cycle",
            "flow",
            "parser",
            "server_state",
            "loop",
            "transport",
        ),
        RequestResponseCycle.__init__: (
            "response_started",
            "response_complete",
            "disconnected",
            "message_event",
            "waiting_for_100_continue",
        ),
        FlowControl.__init__: ("read_paused",),
        HttpToolsProtocol.on_url: ("url",),
    }
    for method, attributes in uses.items():
        source = inspect.getsource(method)
        for attribute in attributes:
            assert f"self.{attribute} " in source or f"self.{attribute}:" in source, (
                method.__qualname__,
                attribute,
            )


def test_the_replaced_method_is_unchanged() -> None:
    for name, fingerprint in REPLACED.items():
        source = inspect.getsource(getattr(HttpToolsProtocol, name))
        assert hashlib.sha256(source.encode()).hexdigest()[:16] == fingerprint, (
            f"uvicorn's HttpToolsProtocol.{name} changed: compare it with the override in "
            "controller/api/connection.py, then update the fingerprint"
        )
