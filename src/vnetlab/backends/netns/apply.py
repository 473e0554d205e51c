"""Reconcile the kernel with a ``DesiredState``; tear down exactly what was recorded.

``apply(desired, store, previous)`` diffs ``desired`` against the last applied state and
touches only what changed:

1. stop processes that are gone or whose spec changed (by recorded PID);
2. delete namespaces that are gone (``ip netns del NAME``: this also deletes every veth,
   bridge, route and nft table inside it, so per-namespace records are enough);
3. create new namespaces in one ``ip -batch`` (after writing their resolv.conf);
4. per namespace, one tolerant ``ip -force -n NS -batch`` of deletions, then the link
   additions (bridges, then veth pairs created directly in both namespaces with
   ``ip -n A link add X type veth peer name Y netns B``), then one strict batch setting
   links up/mtu/master, ``addr replace``, ``route replace``, ``neigh replace ... nud
   permanent`` and ``rule add``;
5. sysctls (after links: per-interface keys need the interface);
6. one atomic ``nft -f -`` per namespace whose tables changed (each table replaced
   with ``table T {}`` + ``delete table T`` + its full text);
7. start new/changed processes (and restart recorded ones found dead).

Write-ahead: every namespace and process is recorded in the store *before* it is
created, so a crash (even ``kill -9``) mid-apply leaves records that ``teardown`` can
use. An apply that did not finish leaves the marker ``netns_apply=running``; the next
``apply`` then cleans everything recorded and rebuilds from scratch instead of diffing
against a state that was never reached.

Processes are started as ``ip netns exec NS ARGV`` in a new session (``setsid``
semantics via ``start_new_session``; ``ip netns exec`` execs in place, so the PID we get
from Popen is the service's PID). They are stopped by recorded PID only, after checking
``/proc/PID/cmdline`` still matches (PID reuse), SIGTERM then SIGKILL. Nothing here kills
by name or pattern, and no ``ip -all netns``.

Example::

    store = Store.open(tmp)
    apply(desired, store)          # previous = what the store says was applied last
    apply(desired2, store)         # in place: only the differences
    teardown(store)                # processes, namespaces, /etc/netns/NAME dirs
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

from ...store import Store
from . import kernel
from .state import DesiredState, Process, Route, Rule, VethPair

STATE_META = "netns_state"
APPLY_META = "netns_apply"
K_NETNS = "netns"
K_PROC = "process"


@dataclass
class ApplyReport:
    created_namespaces: list[str] = field(default_factory=list)
    deleted_namespaces: list[str] = field(default_factory=list)
    started: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    nft_loaded: list[str] = field(default_factory=list)
    rebuilt: bool = False
    seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)


class TeardownError(RuntimeError):
    pass


class NamespaceConflict(RuntimeError):
    """A namespace to create already exists and is not recorded in this store."""


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


def _veth_end(v: VethPair, side: str) -> tuple[str, str, str | None, str | None]:
    if side == "a":
        return v.ns_a, v.name_a, v.mac_a, v.master_a
    return v.ns_b, v.name_b, v.mac_b, v.master_b


# -- processes ----------------------------------------------------------------------------------
def _proc_key(p: Process) -> str:
    return f"{p.ns}/{p.name}"


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.rstrip(b"\0").decode(errors="replace").split("\0") if raw else []


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    except OSError:
        pass


def pid_alive(pid: int) -> bool:
    _reap(pid)
    st = _state(pid)
    return st is not None and st not in ("Z", "X")


def pid_matches(pid: int, ns: str, argv: list[str]) -> bool:
    """The live process PID is still the one we started (guards against PID reuse)."""
    if not pid_alive(pid):
        return False
    cl = _cmdline(pid)
    return cl == list(argv) or cl == kernel.ns_exec_argv(ns, list(argv))


def _kill_pid(pid: int, ns: str, argv: list[str], grace: float = 2.0) -> bool:
    if not pid_matches(pid, ns, argv):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    if pid_matches(pid, ns, argv):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return True
        for _ in range(100):
            if not pid_alive(pid):
                break
            time.sleep(0.02)
    return True


def _stop_record(store: Store, name: str, data: dict) -> None:
    ns, argv, pid = data.get("ns"), data.get("argv") or [], data.get("pid")
    pids = [pid] if pid else []
    if not pid and ns:
        # crashed between "intent recorded" and "pid recorded": find it by its namespace
        # *and* its exact command line -- never by a pattern.
        pids = [p for p in kernel.netns_pids(ns) if pid_matches(p, ns, argv)]
    for p in pids:
        _kill_pid(p, ns, argv)
    store.forget(K_PROC, name)


def log_path(store: Store, ns: str, name: str) -> Path:
    d = store.home / "netns-logs"
    d.mkdir(parents=True, exist_ok=True)
    return d / f"{ns}.{name}.log"


def _start_process(store: Store, p: Process) -> int:
    key = _proc_key(p)
    log = log_path(store, p.ns, p.name)
    store.record(K_PROC, key, {"ns": p.ns, "argv": list(p.argv), "pid": None, "log": str(log)})
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LANG": "C.UTF-8",
           **p.env}
    with open(log, "ab") as fh:
        proc = subprocess.Popen(kernel.ns_exec_argv(p.ns, list(p.argv)), stdin=subprocess.DEVNULL,
                                stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=p.cwd,
                                start_new_session=True, close_fds=True)
    store.record(K_PROC, key, {"ns": p.ns, "argv": list(p.argv), "pid": proc.pid, "log": str(log)})
    return proc.pid


def process_pid(store: Store, ns: str, name: str) -> int | None:
    for _, n, data in store.records(K_PROC):
        if n == f"{ns}/{name}":
            return data.get("pid")
    return None


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
        if store.records(K_NETNS) or store.records(K_PROC):
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

    # 1. processes to stop
    P_pr, D_pr = _idx(prev.processes), _idx(desired.processes)
    recorded = {n: d for _, n, d in store.records(K_PROC)}
    to_start: list[Process] = []
    for k, p in P_pr.items():
        d = D_pr.get(k)
        if d is None or d != p or p.ns in gone_ns or p.ns in resolv_changed:
            if _proc_key(p) in recorded:
                _stop_record(store, _proc_key(p), recorded.pop(_proc_key(p)))
            rep.stopped.append(_proc_key(p))
    for k, d in D_pr.items():
        p = P_pr.get(k)
        if p is None or p != d or d.ns in resolv_changed:
            to_start.append(d)
        else:
            rec = recorded.get(_proc_key(d))
            if not rec or not rec.get("pid") or not pid_matches(rec["pid"], d.ns, d.argv):
                if rec:
                    _stop_record(store, _proc_key(d), rec)
                to_start.append(d)  # recorded one died: restart it
    lap("stop-processes")

    # 2. namespaces gone
    for ns in sorted(gone_ns):
        kernel.netns_del(ns)
        kernel.remove_etc_netns(ns)
        store.forget(K_NETNS, ns)
        rep.deleted_namespaces.append(ns)
    # 3. namespaces new (write-ahead record, resolv.conf, then one batch)
    for ns in new_ns:
        store.record(K_NETNS, ns, {"etc_dir": str(kernel.etc_netns_dir(ns))})
        kernel.write_resolv_conf(ns, D_ns[(ns,)].resolv_conf)
    kernel.ip_host_batch([f"netns add {ns}" for ns in new_ns])
    for ns in resolv_changed:
        kernel.write_resolv_conf(ns, D_ns[(ns,)].resolv_conf)
    rep.created_namespaces = list(new_ns)
    lap("namespaces")

    live = [n.name for n in desired.namespaces]
    live_set = set(live)
    dirty: set[str] = set(new_ns)          # everything in it must be (re)asserted
    relinked: set[str] = set()             # links re-created: reload nft tables too
    dels: dict[str, list[str]] = {ns: [] for ns in live}
    adds: dict[str, list[str]] = {ns: [] for ns in live}
    link_sets: dict[str, dict[str, str]] = {ns: {} for ns in live}

    # 4a. links: bridges
    P_br, D_br = _idx(prev.bridges), _idx(desired.bridges)
    for k, b in P_br.items():
        if b.ns in live_set and k not in D_br:
            dels[b.ns].append(f"link del dev {b.name}")
            dirty.add(b.ns)
    for k, b in D_br.items():
        old = P_br.get(k)
        if old is None or b.ns in new_ns:
            adds[b.ns].append(f"link add name {b.name} "
                              + (f"address {b.mac} " if b.mac else "") + "type bridge")
            dirty.add(b.ns)
        if old is None or old != b or b.ns in dirty:
            link_sets[b.ns][b.name] = _link_set(b.name, b.mtu, b.mac, False, b.alias)

    # 4b. links: veth pairs
    P_v, D_v = _idx(prev.veths), _idx(desired.veths)
    for k, v in P_v.items():
        nv = D_v.get(k)
        if nv is not None and nv.recreate_key() == v.recreate_key():
            continue
        if v.ns_a in live_set and v.ns_b in live_set:
            dels[v.ns_a].append(f"link del dev {v.name_a}")
        elif v.ns_a in live_set:
            dels[v.ns_a].append(f"link del dev {v.name_a}")
        elif v.ns_b in live_set:
            dels[v.ns_b].append(f"link del dev {v.name_b}")
        dirty.update(n for n in (v.ns_a, v.ns_b) if n in live_set)
        relinked.update(n for n in (v.ns_a, v.ns_b) if n in live_set)
    for k, v in D_v.items():
        old = P_v.get(k)
        fresh = (old is None or old.recreate_key() != v.recreate_key()
                 or v.ns_a in new_ns or v.ns_b in new_ns)
        if fresh:
            adds[v.ns_a].append(
                f"link add name {v.name_a} " + (f"address {v.mac_a} " if v.mac_a else "")
                + f"mtu {v.mtu} type veth peer name {v.name_b} "
                + (f"address {v.mac_b} " if v.mac_b else "") + f"mtu {v.mtu} netns {v.ns_b}")
            dirty.update((v.ns_a, v.ns_b))
        for side in ("a", "b"):
            ns, name, mac, master = _veth_end(v, side)
            if fresh or old != v or ns in dirty:
                link_sets[ns][name] = _link_set(name, v.mtu, mac, master, v.alias)

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
    rules_add: dict[str, list[str]] = {ns: [] for ns in live}
    for k, r in P_ru.items():
        if r.ns in live_set and (k not in D_ru or D_ru[k] != r):
            dels[r.ns].append(f"rule del priority {r.priority}")
    for k, r in D_ru.items():
        if k not in P_ru or P_ru[k] != r or r.ns in new_ns:
            rules_add[r.ns].append(_rule_add(r))
    for k, a in P_ad.items():
        if a.ns in live_set and k not in D_ad:
            dirty.add(a.ns)  # removing an address can drop routes: re-assert the rest

    for ns in live:  # tolerant deletions (objects may already be gone with their link)
        kernel.ip_batch(ns, dels[ns], force=True)
    for ns in live:  # bridges before veths (ports are enslaved in the config batch)
        kernel.ip_batch(ns, [l for l in adds[ns] if l.endswith("type bridge")])
    for ns in live:
        kernel.ip_batch(ns, [l for l in adds[ns] if not l.endswith("type bridge")])
    lap("links")

    # 4c. per-namespace configuration batch
    for ns in live:
        lines: list[str] = []
        if ns in new_ns:
            lines.append("link set dev lo up")
        is_dirty = ns in dirty
        # bridges first so ports can be enslaved, then the rest
        br_names = {b.name for b in desired.bridges if b.ns == ns}
        lines += [cmd for dev, cmd in link_sets[ns].items() if dev in br_names]
        lines += [cmd for dev, cmd in link_sets[ns].items() if dev not in br_names]
        lines += [f"addr replace {a.cidr} dev {a.dev}" + (" noprefixroute" if a.noprefixroute else "")
                  for k, a in D_ad.items() if a.ns == ns and (is_dirty or k not in P_ad or P_ad[k] != a)]
        lines += [_route_args(r, "replace") for k, r in D_rt.items()
                  if r.ns == ns and (is_dirty or P_rt.get(k) != r)]
        lines += [f"neigh replace {n.ip} lladdr {n.mac} dev {n.dev} nud permanent"
                  for k, n in D_nb.items() if n.ns == ns and (is_dirty or P_nb.get(k) != n)]
        lines += rules_add[ns]
        kernel.ip_batch(ns, lines)
    lap("config")

    # 5. sysctls
    for ns in live:
        d, p = D_ns[(ns,)], P_ns.get((ns,))
        changed = d.sysctls if p is None else {k: v for k, v in d.sysctls.items()
                                               if p.sysctls.get(k) != v}
        kernel.sysctl(ns, changed)
    lap("sysctl")

    # 6. nft: one atomic transaction per namespace
    P_nt, D_nt = _idx(prev.nft_tables), _idx(desired.nft_tables)
    scripts: dict[str, list[str]] = {}
    for k, t in P_nt.items():
        if t.ns in live_set and k not in D_nt:
            scripts.setdefault(t.ns, []).append(
                f"table {t.family} {t.name} {{}}\ndelete table {t.family} {t.name}\n")
    for k, t in D_nt.items():
        if P_nt.get(k) != t or t.ns in new_ns or t.ns in relinked:
            scripts.setdefault(t.ns, []).append(t.load_script())
            rep.nft_loaded.append(f"{t.ns}:{t.family} {t.name}")
    for ns, parts in scripts.items():
        kernel.nft_load(ns, "".join(parts))
    lap("nft")

    # 7. processes
    for p in to_start:
        _start_process(store, p)
        rep.started.append(_proc_key(p))
    lap("processes")

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
    procs = store.records(K_PROC)
    # first SIGTERM every recorded process that is still the one we started (by PID, checked
    # against its command line), then wait for them together: N processes cost one grace period
    for _, name, data in procs:
        pid, ns, argv = data.get("pid"), data.get("ns"), data.get("argv") or []
        if pid and pid_matches(pid, ns, argv):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline and any(
            d.get("pid") and pid_alive(d["pid"]) and pid_matches(d["pid"], d.get("ns"), d.get("argv") or [])
            for _, _, d in procs):
        time.sleep(0.02)
    for _, name, data in procs:
        try:
            _stop_record(store, name, data)  # SIGKILL stragglers, find PID-less records
        except Exception as e:  # noqa: BLE001 - keep going, report at the end
            problems.append(f"process {name}: {e}")
    nss = [ns for _, ns, _data in store.records(K_NETNS)]
    try:
        existing = [ns for ns in nss if kernel.netns_exists(ns)]
        kernel.ip_host_batch([f"netns del {ns}" for ns in existing], force=True)
    except Exception as e:  # noqa: BLE001
        problems.append(f"namespaces: {e}")
    for ns in nss:
        try:
            kernel.assert_ns(ns)
            kernel.netns_del(ns, missing_ok=True)
            kernel.remove_etc_netns(ns)
            store.forget(K_NETNS, ns)
        except Exception as e:  # noqa: BLE001
            problems.append(f"namespace {ns}: {e}")
    if not problems:
        store.set_meta(STATE_META, "")
        store.set_meta(APPLY_META, "")
    if problems and strict:
        raise TeardownError("; ".join(problems))
    return problems


def clean(store: Store) -> list[str]:
    """``teardown`` that never raises (for ``down`` after a crash); returns the problems."""
    return teardown(store, strict=False)
