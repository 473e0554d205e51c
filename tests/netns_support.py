"""Shared by the emulation tests: the skip marks (root, Linux, ip and nft), a readiness wait, and a
lab up for a test module that must leave nothing behind."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vnetlab.backends.netns import check_prerequisites, kernel
from vnetlab.backends.netns import exec as nx
from vnetlab.backends.netns.apply import K_PROC, pid_alive
from vnetlab.backends.netns.plan import lab_id_for
from vnetlab.lab import Lab

NETNS_MARKS = [
    pytest.mark.netns,
    pytest.mark.skipif(bool(check_prerequisites()),
                       reason="netns emulation unavailable: " + "; ".join(check_prerequisites())),
]


def wait_listening(ns: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if nx.probe_tcp(ns, "127.0.0.1", port, 0.5) == "Connected":
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listening on {ns}:{port}")


@contextmanager
def emulated(home: Path, topology) -> Iterator[Lab]:
    """A lab at ``home`` up on the netns backend with ``topology``; on the way out it goes down, and
    nothing of it may be left: no namespace of its prefix, no process it started."""
    lab = Lab.open(home)
    prefix = f"vl{lab_id_for(lab.home)}-"
    try:
        lab.up(topology, backend="netns")
        yield lab
    finally:
        pids = [d["pid"] for _, _, d in lab.store.records(K_PROC) if d.get("pid")]
        lab.down()
        assert not [n for n in kernel.netns_list() if n.startswith(prefix)]
        assert not [p for p in pids if pid_alive(p)]
