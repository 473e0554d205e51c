"""Running shares of one pure computation in forked worker processes.

A large lab's matrix is tens of thousands of independent traces over one compiled lab (a
``LabView`` of millions of objects). Threads do not help (the GIL), and a process pool would have
to pickle the whole lab to each worker. ``os.fork`` gives each worker the parent's memory as it
is, shared copy-on-write: nothing is copied until written. Two things keep it that way:

- ``gc.freeze()`` before forking moves every object into a generation the cyclic collector never
  scans, so no collection in a worker writes to (and so copies) the lab's pages;
- a worker ends with ``os._exit``: no ``atexit`` handler, no finalizer, no buffered output of the
  parent's is run or flushed twice, and nothing of the parent's (the store, open files) is touched.

Each worker runs ``work(share)`` and writes its pickled answer to a pipe; the parent runs the first
share itself meanwhile, then reads the others' answers in the order they finish. A worker that
raises sends its traceback instead, and the parent raises ``WorkerFailed`` with it: never a partial
answer. Where ``fork`` does not exist, or with ``VNETLAB_WORKERS=1``, everything runs in the parent.
"""

from __future__ import annotations

import gc
import os
import pickle
import selectors
import signal
import threading
import traceback
from bisect import bisect_left
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import TypeVar

Share = TypeVar("Share")
Answer = TypeVar("Answer")

ENV = "VNETLAB_WORKERS"
MAX_WORKERS = 4


class WorkerFailed(RuntimeError):
    """A worker process raised (its traceback is the message) or died without an answer."""


def worker_count(items: int, minimum: int = 200) -> int:
    """How many processes to share ``items`` among: 1 (serial) for ``minimum`` items or fewer, where
    fork is unavailable or ``VNETLAB_WORKERS=1``; else ``VNETLAB_WORKERS`` or one per core, at most 4.
    Serial too where forking is not safe (``fork_safe``)."""
    if not hasattr(os, "fork") or not fork_safe():
        return 1
    asked = os.environ.get(ENV, "").strip()
    if asked.isdigit() and int(asked) >= 1:
        return int(asked) if int(asked) == 1 or items > minimum else 1
    return min(os.cpu_count() or 1, MAX_WORKERS) if items > minimum else 1


def split_bounds(weights: Sequence[float], shares: Sequence[float]) -> list[int]:
    """Where each of ``len(shares)`` consecutive runs of the items starts, and the end: the runs' sums of
    ``weights`` (one per item) in the proportions of ``shares`` (one per run), as near as whole items
    allow (each bound is the item boundary nearest its target). Runs may be empty.
    ``split_bounds([1] * 10, [1, 1]) == [0, 5, 10]``."""
    sums = [0, *accumulate(weights)]   # sums[k]: the weight of the first k items
    whole, bounds, target = sum(shares), [0], 0.0
    for share in shares[:-1]:
        target += sums[-1] * share / whole
        if len(sums) == 1:  # no items
            bounds.append(0)
            continue
        k = bisect_left(sums, target, 1, len(sums) - 1)   # sums[k - 1] < target <= sums[k], or an end
        bounds.append(k - 1 if target - sums[k - 1] <= sums[k] - target else k)
    return [*bounds, len(weights)]


def fork_safe() -> bool:
    """A fork copies only the calling thread: a lock another thread held would stay held in the worker
    for ever. So fork only from the main thread, beside daemon threads only (a progress bar's refresh),
    never from or beside a server's request threads (the API), which then compute serially."""
    here = threading.current_thread()
    return here is threading.main_thread() and all(t.daemon for t in threading.enumerate() if t is not here)


def fork_map(work: Callable[[Share], Answer], shares: Sequence[Share],
             done: Callable[[int], None] | None = None) -> list[Answer]:
    """``[work(share) for share in shares]``, the shares after the first in forked workers;
    ``done(k)`` is told in the parent as share ``k``'s answer arrives."""
    if len(shares) <= 1 or not hasattr(os, "fork"):
        return _serial(work, shares, done)
    gc.freeze()
    try:
        workers: list[tuple[int, int]] = []
        try:
            for share in shares[1:]:
                workers.append(_start(work, share))
            first = work(shares[0])
            if done is not None:
                done(0)
            answers = [first, *_collect(workers, done)]
        except BaseException:
            _reap(workers, stop=True)
            raise
        _reap(workers, stop=False)
        return answers
    finally:
        gc.unfreeze()


def _serial(work, shares, done):
    answers = []
    for k, share in enumerate(shares):
        answers.append(work(share))
        if done is not None:
            done(k)
    return answers


def _start(work, share) -> tuple[int, int]:
    """(pid, read end of its pipe) of a new worker running ``work(share)``."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: never returns
        os.close(read)
        status = 1
        try:
            payload = pickle.dumps((True, work(share)), protocol=pickle.HIGHEST_PROTOCOL)
            status = 0
        except BaseException:  # noqa: BLE001 - every failure goes to the parent
            payload = pickle.dumps((False, traceback.format_exc()))
        try:
            with os.fdopen(write, "wb") as out:
                out.write(payload)
        finally:
            os._exit(status)
    os.close(write)
    return pid, read


def _collect(workers: list[tuple[int, int]], done) -> list:
    """Every worker's answer, in the order of ``workers``, read from all pipes at once (a worker
    whose answer outgrows the pipe's buffer waits for the parent to read it)."""
    chunks: dict[int, list[bytes]] = {read: [] for _pid, read in workers}
    index = {read: k for k, (_pid, read) in enumerate(workers)}
    answers: list = [None] * len(workers)
    with selectors.DefaultSelector() as selector:
        for read in chunks:
            selector.register(read, selectors.EVENT_READ)
        open_pipes = len(chunks)
        while open_pipes:
            for key, _ in selector.select():
                data = os.read(key.fd, 1 << 20)
                if data:
                    chunks[key.fd].append(data)
                    continue
                selector.unregister(key.fd)
                open_pipes -= 1
                k = index[key.fd]
                answers[k] = _answer(workers[k][0], b"".join(chunks[key.fd]))
                if done is not None:
                    done(k + 1)
    return answers


def _answer(pid: int, payload: bytes):
    if not payload:
        raise WorkerFailed(f"worker {pid} ended without an answer")
    ok, value = pickle.loads(payload)
    if not ok:
        raise WorkerFailed(f"worker {pid} failed:\n{value}")
    return value


def _reap(workers: list[tuple[int, int]], stop: bool) -> None:
    """Close the pipes and wait for every worker; ``stop``: after a failure, stop those still
    running first (their answers are no longer wanted)."""
    for pid, read in workers:
        os.close(read)
        try:
            if stop:
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ChildProcessError, ProcessLookupError):
            pass
