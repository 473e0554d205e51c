"""Shared by the emulation tests: the skip marks (root, Linux, ip and nft) and a readiness wait."""

from __future__ import annotations

import time

import pytest

from vnetlab.backends.netns import check_prerequisites
from vnetlab.backends.netns import exec as nx

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
