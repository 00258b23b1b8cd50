"""The only module of the agent that touches the kernel: commands, and netlink requests.

Everything the agent does to the kernel goes through ``Runner``: one asyncio subprocess per
command, many changes per command where the tool allows it (``ip``/``bridge``/``tc`` read
``-batch -`` from stdin; with ``-force`` a failing line does not stop the others and the
failing lines are reported by number). A command that fails raises ``CommandError``, which
carries the command line and what the tool printed on stderr.

``host_netns``: act as if started in that namespace (``-n NS``, ``ip netns exec NS``); tests
use it to run several "hosts" on one machine.

``netlink`` runs a batch whose every line also came as an ``Op`` (links up, MACs, addresses,
routes, veth pairs, permanent neighbours) over a netlink socket opened in the namespace
(pyroute2), and ``sysctl`` writes ``/proc/sys`` there: no process per change. A socket is
opened by entering the namespace for the instant of ``socket()`` (it stays bound to that
namespace); a few are kept, and forgotten when the agent deletes or re-creates the namespace.
``dump`` lists a namespace's links, addresses, routes and qdiscs over such a socket. One batch
(or dump) at a time uses a socket, each request bounded in time.
``nft`` loads or lists rulesets through libnftables (``nftlib``) the same way, in a thread.
Entering and making namespaces from a thread is ``namespaces``' (the runner's, used by
nothing else).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2.netlink.exceptions import NetlinkError

from controller.agent.linux import nftlib
from controller.agent.linux.namespaces import NETNS_DIR, entered, in_thread, make_namespace
from controller.agent.linux.tool_output import documents, failed_lines

log = logging.getLogger(__name__)

BATCH_TOOLS = ("ip", "bridge", "tc")
# Namespace argument meaning "switch nowhere": ``ip netns add`` must run in the agent's own
# mount namespace (``ip -n`` enters a private one, where the new namespace's bind mount
# would be invisible to everyone else).
GLOBAL = ""
_TIMED_OUT = "netlink request timed out (socket dropped; the next reconcile repairs)"
PROCESSES = 8  # commands running at once
SOCKETS = 32  # netlink sockets kept open (router namespaces mostly; NICs are set up once)
REQUEST_TIMEOUT_S = 10.0  # no netlink answer takes this long: the batch fails, socket dropped
RT_SCOPE_LINK = 253
RT_TABLE_MAIN = 254
RTPROT_BOOT = 3  # what `ip route` writes: the same routes, however they were made
RTNH_F_ONLINK = 4
NUD_PERMANENT = 0x80
NUD_NOARP = 0x40
ADDRESS_FLAGS = {"nodad": 0x02, "noprefixroute": 0x200}  # IFA_F_NODAD, IFA_F_NOPREFIXROUTE
NTF_SELF = 0x02


@dataclass(frozen=True)
class Op:
    """One batch line as a netlink request. ``kind``: ``up``, ``del``, ``mac``, ``addr-add``,
    ``addr-del`` (``args``: address/length, then ``nodad``/``noprefixroute`` words),
    ``route-replace``, ``route-del`` (``args``: destination, gateway or ""),
    ``veth`` (``args``: its namespace, the peer's name, the peer's namespace),
    ``neigh-replace`` (``args``: address, MAC), ``neigh-del`` (``args``: address),
    ``fdb-local``/``fdb-local-del`` (``args``: MAC; ``dev``: the bridge), ``netns-add``
    (``dev``: the namespace; in the ``GLOBAL`` batch)."""

    kind: str
    dev: str
    args: tuple[str, ...] = ()


class CommandError(Exception):
    def __init__(self, argv: Sequence[str], returncode: int, stderr: str) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr.strip()
        super().__init__(f"`{' '.join(self.argv)}` exited {returncode}: {self.stderr}")


@dataclass(frozen=True)
class BatchResult:
    """Which lines of a batch failed (0-based line index -> what the tool said)."""

    failed: dict[int, str] = field(default_factory=dict)


@dataclass
class Runner:
    host_netns: str | None = None
    commands: int = 0  # how many commands were executed (observations included)
    requests: int = 0  # how many netlink requests were made
    transactions: int = 0  # how many nft scripts ran in-process (libnftables)
    use_netlink: bool = True
    _sockets: OrderedDict[str, AsyncIPRoute] = field(default_factory=OrderedDict)
    _using: dict[str, int] = field(default_factory=dict)  # batches running, by namespace
    # One batch at a time per socket: two batches of one namespace at once on one socket
    # (the ``ip`` and the ``bridge`` batch of one phase) were seen to wait forever for an
    # answer, about one end-to-end run in three. Different namespaces still run at once.
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _doomed: set[str] = field(default_factory=set)  # to close once their use ends
    # libnftables contexts being freed after their script ran (see ``nft``).
    _freeing: set[asyncio.Future[None]] = field(default_factory=set)
    # A scan of a thousand namespaces would start two thousand processes at once; a few at a
    # time finish sooner (and leave the machine to the endpoints).
    _processes: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(PROCESSES))

    def tool(self, tool: str, netns: str | None) -> list[str]:
        """argv prefix for ``ip``/``bridge``/``tc`` acting in ``netns`` (None: the host)."""
        target = self.host_netns if netns is None else netns
        return [tool, "-n", target] if target else [tool]

    def inside(self, netns: str | None, argv: Sequence[str]) -> list[str]:
        """argv running any other command inside ``netns`` (None: the host)."""
        target = self.host_netns if netns is None else netns
        return ["ip", "netns", "exec", target, *argv] if target else list(argv)

    async def run(
        self, argv: Sequence[str], *, stdin: str | None = None, check: bool = True
    ) -> tuple[int, str, str]:
        self.commands += 1
        async with self._processes:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await process.communicate(stdin.encode() if stdin is not None else None)
        code = process.returncode if process.returncode is not None else -1
        stdout, stderr = out.decode(errors="replace"), err.decode(errors="replace")
        if check and code != 0:
            raise CommandError(argv, code, stderr)
        return code, stdout, stderr

    async def nft(self, netns: str | None, script: str, *, stateless: bool = False) -> str:
        """``nft [-s] -f -`` of ``script`` in ``netns``, and what it printed: in-process
        through libnftables (no process) when it loads, else the tool. Raises ``CommandError``."""
        argv = self.inside(netns, ["nft", *(["-s"] if stateless else []), "-f", "-"])
        if not (self.use_netlink and nftlib.available()):
            return (await self.run(argv, stdin=script))[1]
        self.transactions += 1
        try:
            output, context = await asyncio.to_thread(_nft, self._target(netns), script, stateless)
        except (nftlib.NftError, OSError) as exc:
            raise CommandError(argv, 1, str(exc)) from exc
        # Freeing a context frees the ruleset it read, which took 5-13 ms for a table of a
        # thousand load-balancing rules, longer than the transaction: off the caller's path.
        freeing = asyncio.get_running_loop().run_in_executor(None, context.close)
        self._freeing.add(freeing)
        freeing.add_done_callback(self._freeing.discard)
        return output

    async def json(self, tool: str, netns: str | None, *args: str) -> Any:
        _, out, _ = await self.run([*self.tool(tool, netns), "-j", *args])
        return json.loads(out) if out.strip() else []

    async def json_batch(
        self, tool: str, netns: str | None, commands: Sequence[str], *, details: bool = False
    ) -> list[Any]:
        """Run several show commands in one process; one parsed JSON document per command."""
        argv = [*self.tool(tool, netns), "-j", *(["-d"] if details else []), "-batch", "-"]
        _, out, _ = await self.run(argv, stdin="".join(f"{c}\n" for c in commands))
        return documents(out)

    async def batch(self, tool: str, netns: str | None, lines: Sequence[str]) -> BatchResult:
        """Apply ``lines`` in one process, continuing past failing lines."""
        if not lines:
            return BatchResult()
        if tool == "ip" and netns == GLOBAL:
            for line in lines:  # a namespace deleted or made anew: its socket is stale
                words = line.split()
                if words[:2] in (["netns", "del"], ["netns", "add"]):
                    await self._forget(words[2])
        argv = [*self.tool(tool, netns), "-force", "-batch", "-"]
        code, _, stderr = await self.run(argv, stdin="".join(f"{x}\n" for x in lines), check=False)
        if code == 0:
            return BatchResult()
        failed = failed_lines(stderr)
        if not failed:  # the tool failed as a whole (e.g. no such namespace)
            failed = dict.fromkeys(range(len(lines)), stderr.strip() or f"exit {code}")
        return BatchResult(failed)

    async def netlink(self, netns: str | None, ops: Sequence[Op]) -> BatchResult:
        """Apply ``ops`` in order over netlink, continuing past failing ones (as ``-force``)."""
        failed: dict[int, str] = {}
        if netns == GLOBAL:  # namespaces themselves: ``netns-add`` only
            for number, op in enumerate(ops):
                try:
                    if op.kind != "netns-add":
                        raise OSError(f"{op.kind} is no namespace request")
                    await self._forget(op.dev)
                    await in_thread(make_namespace, op.dev)
                except OSError as exc:
                    failed[number] = str(exc)
            return BatchResult(failed)
        target = self._target(netns)
        self._using[target] = self._using.get(target, 0) + 1
        try:
            async with self._locks.setdefault(target, asyncio.Lock()):
                try:
                    route = await self._socket(netns)
                except OSError as exc:
                    return BatchResult(dict.fromkeys(range(len(ops)), f"namespace {netns}: {exc}"))
                await self._run_ops(route, ops, {}, failed)
                if any(_TIMED_OUT in message for message in failed.values()):
                    await self._forget(target)
        finally:
            self._release(target)
        return BatchResult(failed)

    async def _run_ops(
        self,
        route: AsyncIPRoute,
        ops: Sequence[Op],
        indexes: dict[str, int],
        failed: dict[int, str],
    ) -> None:
        for number, op in enumerate(ops):
            self.requests += 1
            try:
                async with asyncio.timeout(REQUEST_TIMEOUT_S):
                    if op.kind != "veth" and op.dev not in indexes:
                        found = await route.link_lookup(ifname=op.dev)
                        if not found:
                            raise NetlinkError(19, f'Cannot find device "{op.dev}"')
                        indexes[op.dev] = found[0]
                    await _request(route, indexes.get(op.dev, 0), op)
            except TimeoutError:  # an OSError: before the clause for those
                log.error(
                    "netlink: no answer to %s %s in %.0f s", op.kind, op.dev, REQUEST_TIMEOUT_S
                )
                failed.update(dict.fromkeys(range(number, len(ops)), _TIMED_OUT))
                return
            except (NetlinkError, OSError) as exc:
                failed[number] = str(exc)
            if op.kind == "veth":
                indexes.pop(op.dev, None)  # moved to another namespace

    async def dump(self, netns: str, ipv6: bool) -> Dump:
        """The links, addresses, main-table routes (IPv6 too when ``ipv6``) and qdiscs of
        ``netns`` over netlink, no process. Raises ``OSError``."""
        target = self._target(netns)
        self._using[target] = self._using.get(target, 0) + 1
        try:
            async with self._locks.setdefault(target, asyncio.Lock()):
                route = await self._socket(netns)
                self.requests += 4 + ipv6
                try:
                    async with asyncio.timeout(REQUEST_TIMEOUT_S):
                        return await _dump(route, ipv6)
                except TimeoutError:
                    await self._forget(target)
                    raise OSError(f"netlink: no answer in {netns}") from None
        finally:
            self._release(target)

    def sysctl(self, netns: str | None, settings: Sequence[tuple[str, str]]) -> None:
        """Write ``net.…`` settings in ``netns`` (None: the host) through ``/proc/sys``."""
        with entered(self._target(netns)):
            for name, value in settings:
                Path("/proc/sys", *name.split(".")).write_text(value)

    def _target(self, netns: str | None) -> str:
        return (self.host_netns if netns is None else netns) or ""

    async def _socket(self, netns: str | None) -> AsyncIPRoute:
        target = self._target(netns)
        route = self._sockets.pop(target, None)
        if route is None:
            with entered(target):  # the socket belongs to the namespace it is made in
                raw = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            route = AsyncIPRoute(use_socket=raw, groups=0)
        self._sockets[target] = route
        return route

    def _trim(self) -> None:
        """Close the least recently used sockets beyond the few kept (none in use)."""
        idle = [name for name in self._sockets if name not in self._using]
        for name in idle[: max(0, len(self._sockets) - SOCKETS)]:
            _close(self._sockets.pop(name))

    async def _forget(self, netns: str) -> None:
        """Close the socket of ``netns`` (deleted or made anew) once nothing uses it."""
        if netns in self._using:
            self._doomed.add(netns)
            return
        route = self._sockets.pop(netns, None)
        if route is not None:
            _close(route)

    def _release(self, target: str) -> None:
        """One use of ``target``'s socket ended."""
        self._using[target] -= 1
        if not self._using[target]:
            del self._using[target]
            self._locks.pop(target, None)
            if target in self._doomed:
                self._doomed.discard(target)
                route = self._sockets.pop(target, None)
                if route is not None:
                    _close(route)
        self._trim()

    def keep_only(self, namespaces: set[str]) -> None:
        """Close the sockets of namespaces gone (a socket keeps its namespace alive), not one
        in use: an apply may have made the namespace since (closed under it: EBADF, a hang)."""
        for name in [n for n in self._sockets if n and n not in namespaces | self._using.keys()]:
            _close(self._sockets.pop(name))

    async def close(self) -> None:
        if self._freeing:
            await asyncio.gather(*self._freeing)
        while self._sockets:
            _, route = self._sockets.popitem()
            _close(route)


@dataclass(frozen=True)
class Dump:
    """A namespace as netlink lists it (pyroute2 messages)."""

    links: list[Any]
    addresses: list[Any]
    routes: list[Any]  # the main table's, IPv4 then IPv6
    qdiscs: list[Any]


async def _dump(route: AsyncIPRoute, ipv6: bool) -> Dump:
    async def listed(request: Any) -> list[Any]:
        return [message async for message in await request]

    routes = await listed(route.route("dump", family=socket.AF_INET, table=RT_TABLE_MAIN))
    if ipv6:
        routes += await listed(route.route("dump", family=socket.AF_INET6, table=RT_TABLE_MAIN))
    return Dump(
        links=await listed(route.link("dump")),
        addresses=await listed(route.addr("dump")),
        routes=[r for r in routes if r.get("table") == RT_TABLE_MAIN],
        qdiscs=await listed(route.tc("dump")),
    )


def _nft(netns: str, script: str, stateless: bool) -> tuple[str, nftlib.Context]:
    """``script`` run in a context made in ``netns``, and the context, for the caller to free."""
    with entered(netns):  # the context's socket is made here, and stays in ``netns``
        context = nftlib.Context(stateless)
    try:
        return context.run(script), context
    except BaseException:
        context.close()
        raise


async def connect_in(
    netns: str, address: str, port: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection leaving from ``netns`` ("": this namespace): the socket is made in it
    (a socket stays in the namespace it was made in) and connected from the event loop, so a
    probe costs no process and no thread."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with entered(netns):
        sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (address, port))
        return await asyncio.open_connection(sock=sock)
    except BaseException:
        sock.close()
        raise


def _close(route: AsyncIPRoute) -> None:
    socket_ = route.use_socket
    route.close()
    if isinstance(socket_, socket.socket):  # handed to pyroute2, which may leave it open
        socket_.close()


async def _request(route: AsyncIPRoute, index: int, op: Op) -> None:
    if op.kind == "up":
        await route.link("set", index=index, state="up")
    elif op.kind == "del":
        await route.link("del", index=index)
    elif op.kind == "mac":
        await route.link("set", index=index, address=op.args[0])
    elif op.kind in ("addr-add", "addr-del"):
        address, _, length = op.args[0].partition("/")
        verb = "add" if op.kind == "addr-add" else "del"
        flags = sum(ADDRESS_FLAGS[word] for word in op.args[1:])  # as ``ip addr add`` words
        extra = {"flags": flags} if flags else {}
        await route.addr(verb, index=index, address=address, prefixlen=int(length), **extra)
    elif op.kind in ("route-replace", "route-del"):
        destination, gateway = op.args
        spec: dict[str, Any] = {"dst": destination, "oif": index, "proto": RTPROT_BOOT}
        if gateway:  # via the gateway, on the link whatever its subnet (``onlink``)
            spec |= {"gateway": gateway, "flags": RTNH_F_ONLINK}
        else:
            spec["scope"] = RT_SCOPE_LINK
        await route.route("replace" if op.kind == "route-replace" else "del", **spec)
    elif op.kind == "veth":
        netns, peer, peer_netns = op.args
        home = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
        away = os.open(NETNS_DIR / peer_netns, os.O_RDONLY | os.O_CLOEXEC)
        try:
            await route.link(
                "add",
                ifname=op.dev,
                kind="veth",
                net_ns_fd=home,
                peer={"ifname": peer, "net_ns_fd": away},
            )
        finally:
            os.close(home)
            os.close(away)
    elif op.kind in ("fdb-local", "fdb-local-del"):
        # ``bridge fdb replace|del MAC dev BRIDGE self local``: the bridge delivers MAC to its
        # own IP layer (``bridge`` reads every link of the namespace first; this does not).
        verb = "replace" if op.kind == "fdb-local" else "del"
        state = NUD_NOARP | NUD_PERMANENT
        await route.fdb(verb, ifindex=index, lladdr=op.args[0], state=state, flags=NTF_SELF)
    elif op.kind in ("neigh-replace", "neigh-del"):
        if op.kind == "neigh-del":
            await route.neigh("del", dst=op.args[0], ifindex=index)
        else:
            await route.neigh(
                "replace", dst=op.args[0], lladdr=op.args[1], ifindex=index, state=NUD_PERMANENT
            )
    else:
        raise ValueError(f"unknown netlink op {op.kind!r}")
