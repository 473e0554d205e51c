"""Reconcile the kernel with a ``DesiredState``; tear down exactly what was recorded.

``apply(desired, store, previous)`` diffs ``desired`` against the last applied state and
touches only what changed:

1. stop processes that are gone or whose spec changed (their process groups, all together);
2. delete namespaces that are gone (``ip netns del NAME``: this also deletes every veth,
   bridge, route and nft table inside it, so per-namespace records are enough);
3. create new namespaces (two ``ip -batch`` at once, their resolv.conf written meanwhile),
   start the built-in responders at once in the background (:mod:`.processes`), then set
   the namespaces' own sysctls;
4-6. links, addresses, routes, neighbours, rules, sysctls and nft tables
   (:func:`.reconcile.configure`);
7. collect the responders' PIDs, start the ``command:`` services (and restart recorded ones
   found dead).

Write-ahead: every namespace and process is recorded in the store *before* it is
created (one transaction per batch), so a crash (even ``kill -9``) mid-apply leaves records
that ``teardown`` can use. An apply that did not finish leaves the marker
``netns_apply=running``; the next ``apply`` then cleans everything recorded and rebuilds from
scratch instead of diffing against a state that was never reached.

Processes are started, checked and stopped by :mod:`.processes` (by recorded process group
only; nothing here kills by name or pattern, and no ``ip -all netns``). ``K_CAPTURE`` records
(``vnetlab capture`` while it runs) are stopped the same way by ``teardown``.

Example::

    store = Store.open(tmp)
    apply(desired, store)          # previous = what the store says was applied last
    apply(desired2, store)         # in place: only the differences
    teardown(store)                # processes, namespaces, /etc/netns/NAME dirs
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ...store import Store
from . import kernel
from .errors import NamespaceConflict, TeardownError
from .processes import (K_CAPTURE, K_PROC, Starter, finish_stop, pid_alive, pid_matches, proc_key,  # noqa: F401
                        process_pid, rec_running, stop_records, terminate)
from .reconcile import configure, early_sysctls, index
from .state import DesiredState, Process

STATE_META = "netns_state"
APPLY_META = "netns_apply"
K_NETNS = "netns"
K_ETC = "netns-etc"   # a directory of /etc/netns holding a resolv.conf that namespaces' entries lead to


@dataclass
class ApplyReport:
    created_namespaces: list[str] = field(default_factory=list)
    deleted_namespaces: list[str] = field(default_factory=list)
    changed_namespaces: list[str] = field(default_factory=list)   # existing ones whose configuration changed
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    nft_loaded: list[str] = field(default_factory=list)
    listening: list[str] = field(default_factory=list)  # started by the launcher, sockets bound
    failed: list[str] = field(default_factory=list)     # started but never listening (see their logs)
    rebuilt: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


# -- stored state ---------------------------------------------------------------------------
def has_records(store: Store) -> bool:
    """The store records something this backend created in the kernel (or may have, mid-apply)."""
    return any(store.records(kind) for kind in (K_NETNS, K_PROC, K_CAPTURE, K_ETC))


def load_applied(store: Store) -> DesiredState | None:
    raw = store.get_meta(STATE_META)
    return DesiredState.model_validate_json(raw) if raw else None


# -- apply -------------------------------------------------------------------------------------
def apply(desired: DesiredState, store: Store, previous: DesiredState | None = None,
          hook: Callable[[str], None] | None = None) -> ApplyReport:
    """Make the kernel match ``desired``. ``previous`` defaults to the stored last state.

    ``hook(stage)`` is called after each stage (tests use it to simulate a crash).
    """
    kernel.require()
    kernel.allow_descriptors()
    t0 = time.perf_counter()
    rep = ApplyReport()
    hook = hook or (lambda stage: None)

    crashed = store.get_meta(APPLY_META) == "running"
    prev = None if crashed else (previous if previous is not None else load_applied(store))
    if prev is None:
        if has_records(store):
            clean(store)  # leftovers of a crashed or unknown apply: rebuild from nothing
            rep.rebuilt = True
        prev = DesiredState()
    ours = {n for _, n, _ in store.records(K_NETNS)}
    foreign = sorted(n.name for n in desired.namespaces
                     if n.name not in ours and kernel.netns_exists(n.name))
    if foreign:  # never adopt (and later delete) a namespace this store did not create
        raise NamespaceConflict("namespaces already exist and were not created by this lab: "
                                + ", ".join(foreign))
    store.set_meta(APPLY_META, "running")

    def lap(name: str, since: list[float] = [t0]) -> None:  # noqa: B006 - local accumulator
        now = time.perf_counter()
        rep.timings[name] = rep.timings.get(name, 0.0) + now - since[0]
        since[0] = now
        hook(name)

    P_ns, D_ns = index(prev.namespaces), index(desired.namespaces)
    gone_ns = {k[0] for k in P_ns.keys() - D_ns.keys()}
    new_ns = sorted(D_ns[k].name for k in D_ns.keys() - P_ns.keys())
    resolv_changed = {k[0] for k in D_ns.keys() & P_ns.keys()
                      if D_ns[k].resolv_conf != P_ns[k].resolv_conf}

    # 1. processes to stop (all together: one grace period, one transaction)
    P_pr, D_pr = index(prev.processes), index(desired.processes)
    recorded = {n: d for _, n, d in store.records(K_PROC)}
    to_start: list[Process] = []
    to_stop: list[tuple[str, dict]] = []
    for k, p in P_pr.items():
        d = D_pr.get(k)
        if d is None or d != p or p.ns in gone_ns or p.ns in resolv_changed:
            if proc_key(p) in recorded:
                to_stop.append((proc_key(p), recorded.pop(proc_key(p))))
            rep.stopped.append(proc_key(p))
    for k, d in D_pr.items():
        p = P_pr.get(k)
        if p is None or p != d or d.ns in resolv_changed:
            to_start.append(d)
        else:
            rec = recorded.get(proc_key(d))
            if not rec or not rec_running(rec):
                if rec:
                    to_stop.append((proc_key(d), rec))
                to_start.append(d)  # recorded one died: restart it
    stop_records(store, to_stop)
    lap("stop-processes")

    # 2. namespaces gone
    if gone_ns:
        kernel.netns_del_many(sorted(gone_ns))
        for ns in sorted(gone_ns):
            kernel.netns_del(ns)  # no-op unless the batch missed it
            kernel.remove_etc_netns(ns)
        store.forget_many(K_NETNS, sorted(gone_ns))
        rep.deleted_namespaces += sorted(gone_ns)
    # 3. namespaces new (write-ahead records in one transaction each: the namespaces, the
    # directories their /etc/netns entries lead to), then their resolv.conf and the namespaces
    store.record_many(K_NETNS, {ns: {"etc_dir": str(kernel.etc_netns_dir(ns))} for ns in new_ns})
    owner = str(store.home)
    resolv_dirs = {kernel.resolv_dir(ns, D_ns[(ns,)].resolv_conf, owner) for ns in [*new_ns, *resolv_changed]}
    recorded_dirs = {n for _, n, _ in store.records(K_ETC)}
    store.record_many(K_ETC, {d: {"path": str(kernel.ETC_NETNS / d)} for d in sorted(resolv_dirs - recorded_dirs)})
    # a new namespace's own sysctls are written as it is created, before any link exists in
    # it: IPv6 off first makes every link created afterwards cheaper to create and to delete
    kernel.netns_add_with_resolv({ns: D_ns[(ns,)].resolv_conf for ns in new_ns}, owner,
                                 {ns: early_sysctls(D_ns[(ns,)].sysctls) for ns in new_ns})
    for ns in resolv_changed:
        kernel.relink_resolv_conf(ns, D_ns[(ns,)].resolv_conf, owner)
    rep.created_namespaces = list(new_ns)
    # the services' intents are recorded and their launchers started; the built-in responders
    # only need their namespaces (and resolv.conf): they start now, the platform services' launcher
    # waits (its interpreter starts meanwhile) until the network is configured
    starter = Starter(store, to_start)
    starter.begin()
    try:
        starter.release()
        lap("namespaces")
        rep.changed_namespaces = sorted(configure(desired, prev, rep.nft_loaded, new_ns, D_ns, P_ns, lap)
                                        - set(new_ns))
        # 7. processes (the built-in responders were started right after the namespaces)
        starter.finish()
        lap("processes")
    finally:
        starter.finish(start_others=False)  # on an error: record what was started (teardown needs PIDs)
        rep.started, rep.listening, rep.failed = starter.started, starter.listening, starter.failed

    unused_dirs = {n for _, n, _ in store.records(K_ETC)} - {kernel.resolv_dir(n.name, n.resolv_conf, owner)
                                                              for n in desired.namespaces}
    if unused_dirs and not kernel.remove_resolv_dirs(sorted(unused_dirs)):
        store.forget_many(K_ETC, sorted(unused_dirs))
    store.set_meta(STATE_META, desired.model_dump_json())
    store.set_meta(APPLY_META, "ok")
    rep.seconds = time.perf_counter() - t0
    return rep


# -- teardown ----------------------------------------------------------------------------------
def teardown(store: Store, strict: bool = True) -> list[str]:
    """Remove exactly what the store recorded: processes (by PID), then namespaces and their
    /etc/netns dirs. Objects already missing are fine. With ``strict``, raise
    ``TeardownError`` if something recorded could not be removed; returns the problems."""
    problems: list[str] = []
    # SIGTERM every recorded process group still ours, delete the namespaces and their
    # /etc/netns dirs meanwhile (a namespace outlives its name while processes are in it), then
    # wait for all the groups together (N of them cost one grace period) and SIGKILL stragglers
    stopping = []
    for kind in (K_CAPTURE, K_PROC):
        recs = [(name, data) for _, name, data in store.records(kind)]
        try:
            stopping.append((kind, recs, terminate(recs)))
        except Exception as e:  # noqa: BLE001 - keep going, report at the end
            problems.append(f"{kind}: {e}")
    nss = [ns for _, ns, _data in store.records(K_NETNS)]
    try:
        kernel.netns_del_many([ns for ns in nss if kernel.assert_ns(ns)])
    except Exception as e:  # noqa: BLE001
        problems.append(f"namespaces: {e}")
    # the /etc/netns dirs of the namespaces now gone are removed while the processes exit
    deleted = [ns for ns in nss if not kernel.netns_exists(ns)]
    etc = kernel.Background(kernel.remove_etc_netns_many, deleted)
    for kind, recs, targets in stopping:
        try:
            problems += finish_stop(store, targets, recs, kind=kind)
        except Exception as e:  # noqa: BLE001
            problems.append(f"{kind}: {e}")
    gone = []
    for ns in nss:
        try:
            kernel.netns_del(ns, missing_ok=True)  # no-op unless the batch missed it
            gone.append(ns)
        except Exception as e:  # noqa: BLE001
            problems.append(f"namespace {ns}: {e}")
    problems += etc.result()
    problems += kernel.remove_etc_netns_many(sorted(set(gone) - set(deleted)))
    store.forget_many(K_NETNS, gone)
    if not set(nss) - set(gone):  # the directories the namespaces' /etc/netns entries led to
        dirs = [d for _, d, _ in store.records(K_ETC)]
        dir_problems = kernel.remove_resolv_dirs(dirs)
        problems += dir_problems
        if not dir_problems:
            store.forget_many(K_ETC, dirs)
    if not problems:
        store.set_meta(STATE_META, "")
        store.set_meta(APPLY_META, "")
    if problems and strict:
        raise TeardownError("; ".join(problems))
    return problems


def clean(store: Store) -> list[str]:
    """``teardown`` that never raises (for ``down`` after a crash); returns the problems."""
    return teardown(store, strict=False)
