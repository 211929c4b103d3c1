"""The garbage collector, the C allocator and a long-running gateway process.

A full (generation 2) collection walks every tracked object, and start-up
builds a great many that live as long as the process: SQLAlchemy's tables and
compiled statements, the XML schema, FastAPI's routes, pydantic's models. Each
full pass over them paused the process 40-110 ms on the 2-core bench machine,
on the delivery path (issue 14, docs/performance.md "Collector pauses").
Frozen once start-up is done, they are left out of every later collection;
garbage is collected first, so only what is alive is frozen.

glibc's malloc gives each thread that meets a busy arena one of its own, up to
eight per core, and keeps what they held: in the user's whole path the
gateways' worker threads held arenas of 25, 16, 6 and 5 MB besides the main
heap's 27. Capped at two arenas (``cap_malloc_arenas``, as
``MALLOC_ARENA_MAX=2`` would), each gateway's peak fell by 9-12 MB at the same
speed (docs/performance.md, issue 14). Python's threads allocate one at a time
under the GIL, so the arenas' locks are rarely contended.
"""

from __future__ import annotations

import ctypes
import gc
import os

__all__ = ["MALLOC_ARENAS", "cap_malloc_arenas", "freeze_startup"]

MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)


def freeze_startup() -> int:
    """Collect, then leave every object alive now out of later collections; how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def cap_malloc_arenas(limit: int = MALLOC_ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``limit``, before the process starts its threads;
    False when the C library is not glibc, or the environment already says
    (``MALLOC_ARENA_MAX``: the operator's choice stands)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(_M_ARENA_MAX, limit))
