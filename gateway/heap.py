"""The garbage collector and a long-running gateway process.

A full (generation 2) collection walks every tracked object, and start-up
builds a great many that live as long as the process: SQLAlchemy's tables and
compiled statements, the XML schema, FastAPI's routes, pydantic's models. Each
full pass over them paused the process 40-110 ms on the 2-core bench machine,
on the delivery path (issue 14, docs/performance.md "Collector pauses").
Frozen once start-up is done, they are left out of every later collection;
garbage is collected first, so only what is alive is frozen.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup"]


def freeze_startup() -> int:
    """Collect, then leave every object alive now out of later collections; how many."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()
