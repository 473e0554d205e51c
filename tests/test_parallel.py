"""The matrix shared among forked workers answers exactly what one process answers, and a worker's
failure is raised in the parent, never a partial answer."""

import os
from itertools import pairwise
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from generate_large import generate_doc, write  # noqa: E402

from vnetlab import parallel, topology, validation  # noqa: E402
from vnetlab.engine.matrix import matrix  # noqa: E402
from vnetlab.engine.network import LabView  # noqa: E402
from vnetlab.lab import Lab, allocate_dynamic_addresses  # noqa: E402
from vnetlab.model import AzureError, Topology  # noqa: E402


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


# -- the NSG checks of ``validate`` shared among workers ------------------------------------------------------------

def _nsg_lab(breaks=()):
    """20 NSGs of 6 rules; ``breaks``: (NSG index, rule index, field, value) written over its rules."""
    doc = generate_doc(vnets=4, subnets=5, rules=6, vms=8, apps=2, seed=5)
    for nsg, rule, field, value in breaks:
        doc["network_security_groups"][nsg]["security_rules"][rule][field] = value
    topo = Topology.model_validate(doc)
    Lab._derive(topo, None)
    return topo


def _validated(topo, workers: int, monkeypatch, reaches_nsgs: bool = True) -> tuple[str, str, str] | None:
    """(class, code, message) of the error ``validate`` raises with ``workers`` processes, None if none;
    asserts the NSGs were shared among that many (if the checks before them passed)."""
    shares = []
    monkeypatch.setattr(validation, "_PARALLEL_RULES", 0)
    monkeypatch.setattr(validation, "fork_map", lambda work, items: shares.append(len(items)) or
                        parallel.fork_map(work, items))
    monkeypatch.setenv(parallel.ENV, str(workers))
    try:
        validation.validate(topo)
    except AzureError as exc:
        return type(exc).__name__, exc.code, exc.message
    finally:
        assert shares == ([] if workers == 1 or not reaches_nsgs else [workers])
    return None


BREAKS = {
    "none": [],
    "priority in a worker's share": [(17, 2, "priority", 5000)],
    "the first of several, each in a share": [(19, 1, "destination_port_range", "70000"),
                                              (11, 4, "source_address_prefix", "10.0.0.300/24"),
                                              (13, 0, "priority", 5000)],
    "two in the parent's share": [(4, 3, "priority", 99), (2, 5, "destination_port_range", "9-8")],
    "a conflict": [(8, 1, "priority", 100), (8, 1, "direction", "Inbound"), (8, 0, "direction", "Inbound")],
}


@pytest.mark.parametrize("breaks", BREAKS.values(), ids=BREAKS.keys())
def test_nsgs_checked_in_workers_raise_what_one_process_raises(breaks, monkeypatch):
    topo = _nsg_lab(breaks)
    serial = _validated(topo, 1, monkeypatch)
    assert (serial is None) == (not breaks)
    assert _validated(topo, 2, monkeypatch) == serial
    assert _validated(topo, 3, monkeypatch) == serial


def test_a_check_before_the_nsgs_still_comes_first(monkeypatch):
    topo = _nsg_lab([(15, 0, "priority", 5000)])
    topo.virtual_networks[1].subnets[1].address_prefix = topo.virtual_networks[1].subnets[0].address_prefix
    serial = _validated(topo, 1, monkeypatch)
    assert serial[1] == "NetcfgSubnetRangesOverlap"
    assert _validated(topo, 3, monkeypatch, reaches_nsgs=False) == serial


def test_a_lab_file_read_and_checked_in_workers_is_the_lab_one_process_reads(tmp_path, monkeypatch):
    """``up``'s reading and checking of a file in the large lab's form (one-line rules), both ways."""
    path = tmp_path / "lab.yaml"
    write(path, vnets=4, subnets=5, rules=30, vms=8, apps=2)
    forks = []

    def spy(work, items, done=None):
        forks.append(len(items))
        return parallel.fork_map(work, items, done)

    for module, threshold in ((topology, "_PARALLEL_FLOWS"), (validation, "_PARALLEL_RULES")):
        monkeypatch.setattr(module, threshold, 0)
        monkeypatch.setattr(module, "fork_map", spy)
    dumps = []
    for workers in (1, 2):
        monkeypatch.setenv(parallel.ENV, str(workers))
        topo = topology.load(path)
        Lab._derive(topo, None)
        validation.validate(topo)
        dumps.append(topo.model_dump_json())
    assert forks == [2, 2]  # the flow entries' read-ahead, then the NSGs' checks
    assert dumps[0] == dumps[1]


def test_split_bounds_puts_each_bound_at_the_item_boundary_nearest_its_share():
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None)
    @given(st.lists(st.integers(0, 50), max_size=40),
           st.lists(st.sampled_from([0.5, 0.75, 1.0, 2.0]), min_size=1, max_size=5))
    def check(weights, shares):
        bounds = parallel.split_bounds(weights, shares)
        assert len(bounds) == len(shares) + 1 and bounds[0] == 0 and bounds[-1] == len(weights)
        assert bounds == sorted(bounds)
        for i in range(1, len(shares)):
            target = sum(weights) * sum(shares[:i]) / sum(shares)
            best = min(abs(sum(weights[:j]) - target) for j in range(len(weights) + 1))
            assert abs(sum(weights[:bounds[i]]) - target) <= best + 1e-9   # a tie may go either way
        seen.update(kind for kind, hit in (
            ("no items", not weights), ("no weight", bool(weights) and not sum(weights)),
            ("an empty run among items", bool(weights) and len(set(bounds)) < len(bounds)),
            ("three runs or more", len(shares) >= 3), ("unequal shares", len(set(shares)) > 1),
            ("a run of several items", any(b - a > 1 for a, b in pairwise(bounds)))) if hit)

    check()
    assert seen == {"no items", "no weight", "an empty run among items", "three runs or more", "unequal shares",
                    "a run of several items"}
