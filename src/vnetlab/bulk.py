"""Building a large lab's objects without the cyclic garbage collector.

Reading a 200,000-rule lab creates millions of small objects (YAML values, pydantic models,
compiled rules), none of them in a reference cycle: reference counting frees them. The cyclic
collector still walks the growing heap again and again while they are built, which was about
half of the CPU time of ``up`` and of loading a stored lab. ``bulk`` switches it off for the
length of such a build (nested uses are fine) and back on after.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def bulk() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
