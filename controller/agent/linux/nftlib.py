"""libnftables, the library the ``nft`` tool is made of, called in-process (ctypes): a ruleset
change or listing costs no process. Only ``runner`` uses it (it is part of that door), and
``runner`` chooses the namespace: a context's netlink socket is opened when the context is
made, and stays in the namespace the calling thread was in then.

The library comes with the ``nftables`` package the agent needs anyway (Debian's
``libnftables1``); where it cannot be loaded, ``available()`` says so and the runner starts
``nft`` as a process instead.
"""

from __future__ import annotations

import ctypes
from functools import cache

LIBRARY = "libnftables.so.1"
NFT_CTX_DEFAULT = 0
NFT_CTX_OUTPUT_STATELESS = 1 << 2  # ``nft -s``: rules without their counters' values


class NftError(Exception):
    """The library refused a command; the message is what ``nft`` would print on stderr."""


@cache
def _library() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL(LIBRARY)
    except OSError:
        return None
    lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
    lib.nft_ctx_new.restype = ctypes.c_void_p
    lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
    lib.nft_ctx_free.restype = None
    for name in ("nft_ctx_buffer_output", "nft_ctx_buffer_error"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_int
    for name in ("nft_ctx_get_output_buffer", "nft_ctx_get_error_buffer"):
        getattr(lib, name).argtypes = [ctypes.c_void_p]
        getattr(lib, name).restype = ctypes.c_char_p
    lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
    lib.nft_ctx_output_set_flags.restype = None
    lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
    return lib


def available() -> bool:
    return _library() is not None


class Context:
    """One libnftables context: its socket is in the namespace the thread was in when it
    was made (see ``runner``). Used by one thread at a time, then closed."""

    def __init__(self, stateless: bool = False) -> None:
        lib = _library()
        if lib is None:
            raise OSError(f"{LIBRARY} cannot be loaded")
        self._lib = lib
        self._ctx: int | None = lib.nft_ctx_new(NFT_CTX_DEFAULT)
        if not self._ctx:
            raise OSError("nft_ctx_new failed")
        lib.nft_ctx_buffer_output(self._ctx)
        lib.nft_ctx_buffer_error(self._ctx)
        if stateless:
            lib.nft_ctx_output_set_flags(self._ctx, NFT_CTX_OUTPUT_STATELESS)

    def run(self, commands: str) -> str:
        """Run ``commands`` (an ``nft -f`` script: one transaction) and return what it printed.
        The call runs without the GIL: other threads go on meanwhile."""
        code = self._lib.nft_run_cmd_from_buffer(self._ctx, commands.encode())
        output = (self._lib.nft_ctx_get_output_buffer(self._ctx) or b"").decode(errors="replace")
        if code != 0:
            error = self._lib.nft_ctx_get_error_buffer(self._ctx) or b""
            raise NftError(error.decode(errors="replace").strip() or f"nft exited {code}")
        return output

    def close(self) -> None:
        if self._ctx:
            self._lib.nft_ctx_free(self._ctx)
            self._ctx = None


def run(commands: str, stateless: bool = False) -> str:
    """``commands`` in a context of their own (made in this thread's namespace)."""
    context = Context(stateless)
    try:
        return context.run(commands)
    finally:
        context.close()
