"""How the responder launcher collects its children's reports (no root, no fork: pipes stand in for
children): a report of ``1`` is ready, a closed pipe without one is not, and a child that never
reports counts as not ready once its report is overdue, each one after its own wait only."""

from __future__ import annotations

import os
import select
import time

from vnetlab.backends.netns.responder import _reports


def _owing(due: dict[str, float]) -> tuple[object, dict, dict, dict[str, int]]:
    """A poller, ``pending`` and ``result`` as the launcher keeps them, for children named by ``due``
    (seconds from now until each report is due), and the write end of each child's pipe."""
    poller, pending, result, writers = select.poll(), {}, {}, {}
    for key, seconds in due.items():
        r, w = os.pipe()
        poller.register(r, select.POLLIN | select.POLLHUP)
        pending[r] = (key, time.monotonic() + seconds)
        result[key] = {"pid": 0, "ready": False}
        writers[key] = w
    return poller, pending, result, writers


def test_reports_ready_died_and_overdue():
    poller, pending, result, w = _owing({"ready": 5, "died": 5, "hung": 0.3})
    os.write(w["ready"], b"1")
    os.close(w["died"])
    t0 = time.monotonic()
    _reports(poller, pending, result, leave=0)
    waited = time.monotonic() - t0
    assert {k: v["ready"] for k, v in result.items()} == {"ready": True, "died": False, "hung": False}
    assert pending == {} and 0.25 < waited < 3, waited
    os.close(w["ready"])
    os.close(w["hung"])


def test_hung_children_each_cost_their_own_wait_once():
    """At the launcher's cap (``leave``), children already overdue are given up at once, oldest first,
    however many are forked after them."""
    poller, pending, result, w = _owing({f"old{i}": -1 for i in range(3)} | {"new": 5})
    t0 = time.monotonic()
    _reports(poller, pending, result, leave=1)
    assert time.monotonic() - t0 < 0.5
    assert [key for key, _ in pending.values()] == ["new"]
    assert not any(v["ready"] for v in result.values())
    for fd in [*w.values(), *pending]:
        os.close(fd)
