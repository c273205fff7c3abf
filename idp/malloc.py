"""The C library's allocator, tuned for a worker's request threads before they start."""

from __future__ import annotations

import ctypes

MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas() -> bool:
    """glibc gives each request thread a malloc arena of its own, and each arena keeps the memory of the
    last argon2id hash its thread ran (19 MiB by default): about 360 MiB a worker with 16 threads. With
    two arenas the blocks are still reused, not mapped afresh (which slows hashing by a quarter), for
    150-170 MiB a worker (docs/performance.md). Call in the worker before its threads start; True
    when the C library took the setting (glibc), False elsewhere."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    return mallopt is not None and mallopt(M_ARENA_MAX, MALLOC_ARENAS) == 1
