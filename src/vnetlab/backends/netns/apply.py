"""Reconcile the kernel with a ``DesiredState``; tear down exactly what was recorded.

``apply(desired, store, previous)`` diffs ``desired`` against the last applied state and
touches only what changed:

1. stop processes that are gone or whose spec changed (by recorded PID, all together);
2. delete namespaces that are gone (``ip netns del NAME``: this also deletes every veth,
   bridge, route and nft table inside it, so per-namespace records are enough);
3. create new namespaces in one ``ip -batch`` (after writing their resolv.conf), then start
   the built-in responders at once in the background (see "Processes" below);
4. links: tolerant per-namespace deletions (``ip -force -n NS -batch``), then every new
   bridge and veth pair from ONE host ``ip -batch`` (``link add name X netns A ... type veth
   peer name Y netns B``: the kernel creates each end directly in its namespace); then, per
   namespace, links up/mtu/master, ``addr replace``, ``route replace``, ``neigh replace ...
   nud permanent`` and ``rule add``, sent in-process over rtnetlink by a thread that
   ``setns()``'s into each namespace in turn (``netlink.configure_many``; the same requests
   go through ``ip -n NS -batch`` with ``VNETLAB_NETNS_IP_BATCH=1``);
5. in the same pass, the namespace's sysctls (after links: per-interface keys need them);
6. meanwhile, one atomic ``nft -f -`` per namespace whose tables changed (namespaces
   concurrently; each table replaced with ``table T {}`` + ``delete table T`` + its text);
7. collect the responders' PIDs, start the other processes (and restart recorded ones found
   dead).

Write-ahead: every namespace and process is recorded in the store *before* it is
created (one transaction per batch), so a crash (even ``kill -9``) mid-apply leaves records
that ``teardown`` can use. An apply that did not finish leaves the marker
``netns_apply=running``; the next ``apply`` then cleans everything recorded and rebuilds from
scratch instead of diffing against a state that was never reached.

Processes: the built-in responder (``python -I -S responder.py ...`` listening on the
wildcard address) is started by the *launcher* (``responder.py --launch TOKEN``): one
interpreter that forks one child per service, each entering its namespace (``setns``) and a
private mount namespace with ``/etc/netns/NS`` bound over ``/etc`` (as ``ip netns exec``
does), binding its sockets and only then reporting ready. Those children keep the
launcher's command line, unique per launch, which is recorded with each PID. The launcher
dies with the applying process (``PR_SET_PDEATHSIG``). Other commands are started as ``ip
netns exec NS ARGV`` in a new session (``ip netns exec`` execs in place, so the PID from
Popen is the service's). Processes are stopped by recorded PID only, after checking
``/proc/PID/cmdline`` still matches (PID reuse), SIGTERM then SIGKILL; a record without a
PID (crash between intent and PID) is resolved by its namespace *and* exact command line.
Nothing here kills by name or pattern, and no ``ip -all netns``. ``K_CAPTURE`` records
(``vnetlab capture`` while it runs) are stopped the same way by ``teardown``.

Example::

    store = Store.open(tmp)
    apply(desired, store)          # previous = what the store says was applied last
    apply(desired2, store)         # in place: only the differences
    teardown(store)                # processes, namespaces, /etc/netns/NAME dirs
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

from ...store import Store
from . import kernel, netlink
from .errors import NamespaceConflict, TeardownError
from .processes import (K_CAPTURE, K_PROC, Starter, pid_alive, pid_matches, proc_key, process_pid,  # noqa: F401
                        rec_running, stop_records)
from .state import DesiredState, Process, Route, Rule, VethPair

STATE_META = "netns_state"
APPLY_META = "netns_apply"
K_NETNS = "netns"


@dataclass
class ApplyReport:
    created_namespaces: list[str] = field(default_factory=list)
    deleted_namespaces: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    nft_loaded: list[str] = field(default_factory=list)
    listening: list[str] = field(default_factory=list)  # started by the launcher, sockets bound
    failed: list[str] = field(default_factory=list)     # started but never listening (see their logs)
    rebuilt: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


# -- stored state ---------------------------------------------------------------------------
def load_applied(store: Store) -> DesiredState | None:
    raw = store.get_meta(STATE_META)
    return DesiredState.model_validate_json(raw) if raw else None


def _idx(objs: Iterable) -> dict:
    return {o.key(): o for o in objs}


# -- command builders -------------------------------------------------------------------------
def _q(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _route_args(r: Route, verb: str) -> str:
    parts = ["route", verb]
    if r.type != "unicast":
        parts.append(r.type)
    parts.append(r.dest)
    if r.type == "unicast":
        if r.via:
            parts += ["via", r.via]
        if r.dev:
            parts += ["dev", r.dev]
        if r.src and verb != "del":
            parts += ["src", r.src]
        if r.onlink and verb != "del":
            parts.append("onlink")
    if r.metric is not None:
        parts += ["metric", str(r.metric)]
    if r.table is not None:
        parts += ["table", str(r.table)]
    return " ".join(parts)


def _rule_add(r: Rule) -> str:
    parts = ["rule", "add", "priority", str(r.priority)]
    if r.iif:
        parts += ["iif", r.iif]
    if r.from_:
        parts += ["from", r.from_]
    if r.to:
        parts += ["to", r.to]
    if r.fwmark is not None:
        parts += ["fwmark", hex(r.fwmark)]
    parts += ["lookup", str(r.table)]
    return " ".join(parts)


def _link_set(dev: str, mtu: int | None, mac: str | None, master: str | None | bool,
              alias: str | None) -> str:
    parts = ["link", "set", "dev", dev]
    if mac:
        parts += ["address", mac]
    if mtu:
        parts += ["mtu", str(mtu)]
    if master is not False:  # False = leave master alone (bridges)
        parts += ["master", master] if master else ["nomaster"]
    if alias:
        parts += ["alias", _q(alias)]
    parts.append("up")
    return " ".join(parts)


def _op_line(op: tuple) -> str:
    """One ``netlink.configure_many`` op as the ``ip -batch`` line doing the same."""
    kind = op[0]
    if kind == "lo":
        return "link set dev lo up"
    if kind == "link":
        return _link_set(*op[1:])
    if kind == "addr":
        a = op[1]
        return f"addr replace {a.cidr} dev {a.dev}" + (" noprefixroute" if a.noprefixroute else "")
    if kind == "route":
        return _route_args(op[1], "replace")
    if kind == "neigh":
        n = op[1]
        return f"neigh replace {n.ip} lladdr {n.mac} dev {n.dev} nud permanent"
    if kind == "rule":
        return _rule_add(op[1])
    raise ValueError(f"unknown op {kind!r}")


def _veth_end(v: VethPair, side: str) -> tuple[str, str, str | None, str | None]:
    if side == "a":
        return v.ns_a, v.name_a, v.mac_a, v.master_a
    return v.ns_b, v.name_b, v.mac_b, v.master_b


# -- apply -------------------------------------------------------------------------------------
def apply(desired: DesiredState, store: Store, previous: DesiredState | None = None,
          hook: Callable[[str], None] | None = None) -> ApplyReport:
    """Make the kernel match ``desired``. ``previous`` defaults to the stored last state.

    ``hook(stage)`` is called after each stage (tests use it to simulate a crash).
    """
    kernel.require()
    t0 = time.perf_counter()
    rep = ApplyReport()
    hook = hook or (lambda stage: None)

    crashed = store.get_meta(APPLY_META) == "running"
    prev = None if crashed else (previous if previous is not None else load_applied(store))
    if prev is None:
        if store.records(K_NETNS) or store.records(K_PROC) or store.records(K_CAPTURE):
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

    P_ns, D_ns = _idx(prev.namespaces), _idx(desired.namespaces)
    gone_ns = {k[0] for k in P_ns.keys() - D_ns.keys()}
    new_ns = [D_ns[k].name for k in D_ns.keys() - P_ns.keys()]
    new_ns.sort()
    resolv_changed = {k[0] for k in D_ns.keys() & P_ns.keys()
                      if D_ns[k].resolv_conf != P_ns[k].resolv_conf}

    # 1. processes to stop (all together: one grace period, one transaction)
    P_pr, D_pr = _idx(prev.processes), _idx(desired.processes)
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
    # 3. namespaces new (write-ahead records in one transaction, resolv.conf, then one batch)
    store.record_many(K_NETNS, {ns: {"etc_dir": str(kernel.etc_netns_dir(ns))} for ns in new_ns})
    kernel.netns_add_with_resolv({ns: D_ns[(ns,)].resolv_conf for ns in new_ns})
    for ns in resolv_changed:
        kernel.write_resolv_conf(ns, D_ns[(ns,)].resolv_conf)
    rep.created_namespaces = list(new_ns)
    starter = Starter(store, to_start)
    starter.begin()
    lap("namespaces")
    try:
        _configure(desired, prev, store, rep, new_ns, gone_ns, D_ns, P_ns, lap)
        # 7. processes (the built-in responders were started right after the namespaces)
        starter.finish()
        lap("processes")
    finally:
        starter.finish(start_others=False)  # on an error: record what was started (teardown needs PIDs)
        rep.started, rep.listening, rep.failed = starter.started, starter.listening, starter.failed

    store.set_meta(STATE_META, desired.model_dump_json())
    store.set_meta(APPLY_META, "ok")
    rep.seconds = time.perf_counter() - t0
    return rep


def _configure(desired: DesiredState, prev: DesiredState, store: Store, rep: ApplyReport, new_ns: list[str],
               gone_ns: set[str], D_ns: dict, P_ns: dict, lap: Callable[[str], None]) -> None:
    """Stages 4-6: links, addresses/routes/neighbours/rules, sysctls, nft."""

    live = [n.name for n in desired.namespaces]
    live_set = set(live)
    new_set = set(new_ns)
    dirty: set[str] = set(new_ns)          # everything in it must be (re)asserted
    relinked: set[str] = set()             # links re-created: reload nft tables too
    dels: dict[str, list[str]] = {ns: [] for ns in live}
    bridge_adds: list[str] = []
    veth_adds: list[str] = []
    link_sets: dict[str, dict[str, tuple]] = {ns: {} for ns in live}

    # 4a. links: bridges
    P_br, D_br = _idx(prev.bridges), _idx(desired.bridges)
    for k, b in P_br.items():
        if b.ns in live_set and k not in D_br:
            dels[b.ns].append(f"link del dev {b.name}")
            dirty.add(b.ns)
    for k, b in D_br.items():
        old = P_br.get(k)
        if old is None or b.ns in new_set:
            bridge_adds.append(f"link add name {b.name} netns {b.ns} "
                               + (f"address {b.mac} " if b.mac else "") + "type bridge")
            dirty.add(b.ns)
        if old is None or old != b or b.ns in dirty:
            link_sets[b.ns][b.name] = ("link", b.name, b.mtu, b.mac, False, b.alias)

    # 4b. links: veth pairs
    P_v, D_v = _idx(prev.veths), _idx(desired.veths)
    for k, v in P_v.items():
        nv = D_v.get(k)
        if nv is not None and nv.recreate_key() == v.recreate_key():
            continue
        if v.ns_a in live_set:
            dels[v.ns_a].append(f"link del dev {v.name_a}")
        elif v.ns_b in live_set:
            dels[v.ns_b].append(f"link del dev {v.name_b}")
        dirty.update(n for n in (v.ns_a, v.ns_b) if n in live_set)
        relinked.update(n for n in (v.ns_a, v.ns_b) if n in live_set)
    for k, v in D_v.items():
        old = P_v.get(k)
        fresh = (old is None or old.recreate_key() != v.recreate_key()
                 or v.ns_a in new_set or v.ns_b in new_set)
        if fresh:
            # One end is set up at creation (its peer still down: no carrier), the other by its
            # namespace's batch. The end set up first must be the bridge port, if any: its
            # carrier then comes on with an inactive qdisc, which the kernel's linkwatch treats
            # as urgent. A port set up *after* its peer gets carrier and qdisc at once and its
            # linkwatch event is deferred by up to 1 s when the two ends' ifindexes happen to be
            # equal (the kernel's "stacked device" test), so the bridge would not forward yet.
            first, second = ((v.ns_b, v.name_b, v.mac_b), (v.ns_a, v.name_a, v.mac_a)) \
                if v.master_b and not v.master_a else ((v.ns_a, v.name_a, v.mac_a), (v.ns_b, v.name_b, v.mac_b))
            veth_adds.append(
                f"link add name {first[1]} netns {first[0]} " + (f"address {first[2]} " if first[2] else "")
                + f"mtu {v.mtu} up type veth peer name {second[1]} netns {second[0]} "
                + (f"address {second[2]} " if second[2] else "") + f"mtu {v.mtu}")
            dirty.update((v.ns_a, v.ns_b))
        for side in ("a", "b"):
            ns, name, mac, master = _veth_end(v, side)
            if fresh or old != v or ns in dirty:
                link_sets[ns][name] = ("link", name, v.mtu, mac, master, v.alias)

    # deletions of addresses etc. (computed before running anything)
    P_ad, D_ad = _idx(prev.all_addresses()), _idx(desired.all_addresses())
    for k, a in P_ad.items():
        if a.ns in live_set and k not in D_ad:
            dels[a.ns].append(f"addr del {a.cidr} dev {a.dev}")
    P_rt, D_rt = _idx(prev.routes), _idx(desired.routes)
    for k, r in P_rt.items():
        if r.ns in live_set and k not in D_rt:
            dels[r.ns].insert(0, _route_args(r, "del"))
    P_nb, D_nb = _idx(prev.neighbours), _idx(desired.neighbours)
    for k, n in P_nb.items():
        if n.ns in live_set and k not in D_nb:
            dels[n.ns].append(f"neigh del {n.ip} dev {n.dev}")
    P_ru, D_ru = _idx(prev.rules), _idx(desired.rules)
    rules_add: dict[str, list[Rule]] = {ns: [] for ns in live}
    for k, r in P_ru.items():
        if r.ns in live_set and (k not in D_ru or D_ru[k] != r):
            dels[r.ns].append(f"rule del priority {r.priority}")
    for k, r in D_ru.items():
        if k not in P_ru or P_ru[k] != r or r.ns in new_set:
            rules_add[r.ns].append(r)
    for k, a in P_ad.items():
        if a.ns in live_set and k not in D_ad:
            dirty.add(a.ns)  # removing an address can drop routes: re-assert the rest

    # tolerant deletions (objects may already be gone with their link), concurrently
    kernel.ip_batch_many({ns: dels[ns] for ns in live if dels[ns]}, force=True)
    # every new link, directly in its namespace(s), from one process; bridges first
    kernel.link_add_batch(bridge_adds + veth_adds)
    lap("links")

    # 4c. per-namespace configuration: links up/mtu/master, addresses, routes, neighbours, rules
    by_ns: dict[str, dict[str, list]] = {ns: {"ad": [], "rt": [], "nb": []} for ns in live}
    for k, a in D_ad.items():
        if a.ns in live_set and (a.ns in dirty or k not in P_ad or P_ad[k] != a):
            by_ns[a.ns]["ad"].append(a)
    for k, r in D_rt.items():
        if r.ns in live_set and (r.ns in dirty or P_rt.get(k) != r):
            by_ns[r.ns]["rt"].append(r)
    for k, n in D_nb.items():
        if n.ns in live_set and (n.ns in dirty or P_nb.get(k) != n):
            by_ns[n.ns]["nb"].append(n)
    br_names: dict[str, set[str]] = {}
    for b in desired.bridges:
        br_names.setdefault(b.ns, set()).add(b.name)
    ops: dict[str, list[tuple]] = {}
    for ns in live:
        o: list[tuple] = []
        if ns in new_set:
            o.append(("lo",))
        brs = br_names.get(ns, set())
        # bridges first so ports can be enslaved, then the rest
        o += [op for dev, op in link_sets[ns].items() if dev in brs]
        o += [op for dev, op in link_sets[ns].items() if dev not in brs]
        o += [("addr", a) for a in by_ns[ns]["ad"]]
        o += [("route", r) for r in by_ns[ns]["rt"]]
        o += [("neigh", n) for n in by_ns[ns]["nb"]]
        o += [("rule", r) for r in rules_add[ns]]
        if o:
            ops[ns] = o
    # 5. sysctls (per-interface keys need the links)
    changed: dict[str, dict[str, str]] = {}
    for ns in live:
        d, p = D_ns[(ns,)], P_ns.get((ns,))
        changed[ns] = d.sysctls if p is None else {k: v for k, v in d.sysctls.items() if p.sysctls.get(k) != v}

    # 6. nft: one atomic transaction per namespace, loaded (namespaces concurrently) while the
    # addresses/routes/sysctls are being set: tables name interfaces, which exist by now
    P_nt, D_nt = _idx(prev.nft_tables), _idx(desired.nft_tables)
    scripts: dict[str, list[str]] = {}
    for k, t in P_nt.items():
        if t.ns in live_set and k not in D_nt:
            scripts.setdefault(t.ns, []).append(
                f"table {t.family} {t.name} {{}}\ndelete table {t.family} {t.name}\n")
    for k, t in D_nt.items():
        if P_nt.get(k) != t or t.ns in new_set or t.ns in relinked:
            scripts.setdefault(t.ns, []).append(t.load_script())
            rep.nft_loaded.append(f"{t.ns}:{t.family} {t.name}")
    nft_errors: list[BaseException] = []

    def load_nft() -> None:
        try:
            kernel.nft_load_many({ns: "".join(parts) for ns, parts in scripts.items()})
        except BaseException as e:  # noqa: BLE001 - re-raised below
            nft_errors.append(e)

    nft_thread = threading.Thread(target=load_nft, name="vnetlab-nft")
    nft_thread.start()
    try:
        if os.environ.get("VNETLAB_NETNS_IP_BATCH"):  # the same requests through ``ip -n NS -batch``
            kernel.ip_batch_many({ns: [_op_line(op) for op in o] for ns, o in ops.items()})
            kernel.sysctl_many(changed)
        else:  # in-process: one setns per namespace for its netlink requests and its sysctls
            netlink.configure_many(ops, changed)
        lap("config")
        lap("sysctl")
    finally:
        nft_thread.join()
    if nft_errors:
        raise nft_errors[0]
    lap("nft")


# -- teardown ----------------------------------------------------------------------------------
def teardown(store: Store, strict: bool = True) -> list[str]:
    """Remove exactly what the store recorded: processes (by PID), then namespaces and their
    /etc/netns dirs. Objects already missing are fine. With ``strict``, raise
    ``TeardownError`` if something recorded could not be removed; returns the problems."""
    problems: list[str] = []
    for kind in (K_CAPTURE, K_PROC):
        procs = [(name, data) for _, name, data in store.records(kind)]
        try:
            # SIGTERM every recorded process still matching its record, wait for all of them
            # together (N processes cost one grace period), SIGKILL stragglers, resolve PID-less
            # records by namespace + exact command line
            problems += stop_records(store, procs, kind=kind)
        except Exception as e:  # noqa: BLE001 - keep going, report at the end
            problems.append(f"{kind}: {e}")
    nss = [ns for _, ns, _data in store.records(K_NETNS)]
    try:
        kernel.netns_del_many([ns for ns in nss if kernel.assert_ns(ns)])
    except Exception as e:  # noqa: BLE001
        problems.append(f"namespaces: {e}")
    gone = []
    for ns in nss:
        try:
            kernel.assert_ns(ns)
            kernel.netns_del(ns, missing_ok=True)
            kernel.remove_etc_netns(ns)
            gone.append(ns)
        except Exception as e:  # noqa: BLE001
            problems.append(f"namespace {ns}: {e}")
    store.forget_many(K_NETNS, gone)
    if not problems:
        store.set_meta(STATE_META, "")
        store.set_meta(APPLY_META, "")
    if problems and strict:
        raise TeardownError("; ".join(problems))
    return problems


def clean(store: Store) -> list[str]:
    """``teardown`` that never raises (for ``down`` after a crash); returns the problems."""
    return teardown(store, strict=False)
