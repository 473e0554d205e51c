"""The matrix shared among forked workers answers exactly what one process answers, and a worker's
failure is raised in the parent, never a partial answer."""

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from generate_large import generate_doc  # noqa: E402

from vnetlab import parallel  # noqa: E402
from vnetlab.engine.matrix import matrix  # noqa: E402
from vnetlab.engine.network import LabView  # noqa: E402
from vnetlab.lab import allocate_dynamic_addresses  # noqa: E402
from vnetlab.model import Topology  # noqa: E402


def _many_classes() -> LabView:
    """The large lab's shape, small: an NSG per subnet and a VM in nearly every one, > 200 classes."""
    topo = Topology.model_validate(generate_doc(vnets=12, subnets=20, rules=4, vms=240, apps=4, seed=3))
    allocate_dynamic_addresses(topo, None)
    return LabView(topo)


def test_parallel_and_serial_matrix_are_the_same_dict():
    net = _many_classes()
    told = []
    serial = matrix(net, ["80", "22"], workers=1)
    shared = matrix(net, ["80", "22"], workers=2, progress=lambda done, total: told.append((done, total)))
    sources = len(serial["classes"])
    assert sources > 200 and serial["cells"]
    assert shared == serial
    assert [total for _, total in told] == [sources] * len(told) and told[-1][0] == sources
    assert matrix(net, ["80", "22"], workers=3) == serial


def test_a_worker_exception_is_raised_in_the_parent():
    with pytest.raises(parallel.WorkerFailed, match="ZeroDivisionError"):
        parallel.fork_map(lambda share: 1 // share, [1, 0])   # share 0 runs in the parent, 1 in a worker


def test_a_worker_dying_without_an_answer_is_raised_in_the_parent():
    def work(share):
        if share == "die":
            os._exit(3)
        return share
    with pytest.raises(parallel.WorkerFailed, match="without an answer"):
        parallel.fork_map(work, ["ok", "die"])


def test_answers_come_back_in_the_order_of_the_shares():
    told = []
    assert parallel.fork_map(lambda share: [share] * share, [1, 2, 3], told.append) == [[1], [2, 2], [3, 3, 3]]
    assert sorted(told) == [0, 1, 2]


def test_worker_count_is_serial_when_asked_or_small(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    monkeypatch.delenv(parallel.ENV, raising=False)
    assert parallel.worker_count(201) == parallel.MAX_WORKERS
    assert parallel.worker_count(200) == 1
    monkeypatch.setenv(parallel.ENV, "1")
    assert parallel.worker_count(5000) == 1
    monkeypatch.setenv(parallel.ENV, "2")
    assert parallel.worker_count(5000) == 2


def test_no_fork_from_or_beside_a_request_thread(monkeypatch):
    import threading
    monkeypatch.delenv(parallel.ENV, raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(parallel.worker_count(5000)))
    worker.start()
    worker.join()
    assert seen == [1]   # from a thread that is not the main one
    stop = threading.Event()
    beside = threading.Thread(target=stop.wait)   # a non-daemon thread running beside the main one
    beside.start()
    try:
        assert parallel.worker_count(5000) == 1
    finally:
        stop.set()
        beside.join()
    refresh = threading.Thread(target=stop.wait, daemon=True)   # like a progress bar's refresh
    stop.clear()
    refresh.start()
    try:
        assert parallel.worker_count(5000) == parallel.MAX_WORKERS
    finally:
        stop.set()
        refresh.join()
