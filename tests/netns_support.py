"""Shared by the emulation tests: the skip marks (root, Linux, ip and nft), a readiness wait, and a
lab up for a test module that must leave nothing behind."""

from __future__ import annotations

import textwrap
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


def curl_failure(got: dict) -> str | None:
    """The outcome of a curl that got no HTTP answer, by its exit code (6 no name, 28 timed out,
    7 no connection), or None when it got one."""
    if got["exit"] == 6:
        return "NotResolved"
    if got["exit"] == 28:
        return "TimedOut"
    if got["exit"] == 7:
        return "Refused" if "refused" in got["err"].lower() else "Unreachable"
    if got["exit"] != 0:
        return f"? curl {got['exit']}: {got['err']}"
    return None


def probe_against(ns: str, flows: list[tuple[str, str, int | None]], expected: list[str],
                  timeout: float = 1.0, patient: float = 5.0) -> list[str]:
    """``nx.probe_many(ns, flows, timeout)``, where a flow timed out while the engine expects an answer
    (``expected``: its verdicts) probed once more with ``patient`` seconds: on a loaded machine an answer
    can take longer than ``timeout``; a flow the kernel really drops times out again."""
    got = nx.probe_many(ns, flows, timeout)
    again = [i for i, (real, want) in enumerate(zip(got, expected, strict=True))
             if real == "TimedOut" and want != "TimedOut"]
    for i, real in zip(again, nx.probe_many(ns, [flows[i] for i in again], patient), strict=True):
        got[i] = real
    return got


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


# A real TDS client (python-tds) run in a namespace: argv[1] is the server; prints the login outcome,
# with SQL's error number and text on a refusal.
TDS_CLIENT = textwrap.dedent("""
    import json, sys, pytds
    try:
        pytds.connect(sys.argv[1], "master", "u", "p", port=1433, login_timeout=5, autocommit=True,
                      disable_connect_retry=True).close()
        print(json.dumps({"login": True}))
    except Exception as e:
        while e is not None and not hasattr(e, "msg_no"):
            e = e.__cause__ or e.__context__
        print(json.dumps({"login": False, "number": getattr(e, "msg_no", None), "text": getattr(e, "text", "")}))
    """)
