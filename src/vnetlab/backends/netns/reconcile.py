"""Reconcile: the kernel changes that take one applied ``DesiredState`` to the next.

``configure(desired, prev, ...)`` does stages 4-6 of :func:`.apply.apply`: tolerant deletions
of what is gone (``ip -force -n NS -batch``), every new bridge and veth pair from ONE host
``ip -batch`` (``link add name X netns A ... type veth peer name Y netns B``: the kernel creates
each end directly in its namespace); then, per namespace, links up/mtu/master, ``addr
replace``, ``route replace``, ``neigh replace ... nud permanent`` and ``rule add``, sent
in-process over rtnetlink by a thread that ``setns()``'s into each namespace in turn
(``netlink.configure_many``; the same requests go through ``ip -n NS -batch`` with
``VNETLAB_NETNS_IP_BATCH=1``), the sysctls in the same pass; meanwhile one atomic ``nft -f -``
per namespace whose tables changed (namespaces concurrently).
"""

from __future__ import annotations

import os
import threading
from typing import Callable, Iterable

from . import kernel, netlink
from .state import DesiredState, Route, Rule, VethPair


def index(objs: Iterable) -> dict:
    return {o.key(): o for o in objs}


# -- ip -batch lines (the same requests as netlink.configure_many) -------------------------------------------------------------------------
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
    if kind == "noipv6":
        return f"link set dev {op[1]} addrgenmode none"
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


def _veth_add(v: VethPair, per_link: set[str]) -> str:
    """The ``link add`` line of a veth pair. One end is set up at creation (its peer still down:
    no carrier), the other by its namespace's batch. The end set up first must be the bridge
    port, if any: its carrier then comes on with an inactive qdisc, which the kernel's linkwatch
    treats as urgent. A port set up *after* its peer gets carrier and qdisc at once and its
    linkwatch event is deferred by up to 1 s when the two ends' ifindexes happen to be equal (the
    kernel's "stacked device" test), so the bridge would not forward yet. An end in a namespace
    of ``per_link`` (``Namespace.ipv6_per_link``) is never set up at creation: it would get an
    IPv6 link-local address as soon as its peer came up, before its batch turns that off."""
    a, b = (v.ns_a, v.name_a, v.mac_a), (v.ns_b, v.name_b, v.mac_b)
    if v.master_b and not v.master_a or v.ns_a in per_link and v.ns_b not in per_link:
        a, b = b, a
    up = "up " if a[0] not in per_link else ""
    return (f"link add name {a[1]} netns {a[0]} " + (f"address {a[2]} " if a[2] else "")
            + f"mtu {v.mtu} {up}type veth peer name {b[1]} netns {b[0]} "
            + (f"address {b[2]} " if b[2] else "") + f"mtu {v.mtu}")


def _veth_end(v: VethPair, side: str) -> tuple[str, str, str | None, str | None]:
    if side == "a":
        return v.ns_a, v.name_a, v.mac_a, v.master_a
    return v.ns_b, v.name_b, v.mac_b, v.master_b



def configure(desired: DesiredState, prev: DesiredState, nft_loaded: list[str], new_ns: list[str],
              D_ns: dict, P_ns: dict, lap: Callable[[str], None]) -> set[str]:
    """Stages 4-6: links, addresses/routes/neighbours/rules, sysctls, nft."""

    live = [n.name for n in desired.namespaces]
    live_set = set(live)
    per_link = {n.name for n in desired.namespaces if n.ipv6_per_link}
    new_set = set(new_ns)
    dirty: set[str] = set(new_ns)          # everything in it must be (re)asserted
    relinked: set[str] = set()             # links re-created: reload nft tables too
    dels: dict[str, list[str]] = {ns: [] for ns in live}
    bridge_adds: list[str] = []
    veth_adds: list[str] = []
    link_sets: dict[str, dict[str, tuple]] = {ns: {} for ns in live}

    # 4a. links: bridges
    P_br, D_br = index(prev.bridges), index(desired.bridges)
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
    P_v, D_v = index(prev.veths), index(desired.veths)
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
            veth_adds.append(_veth_add(v, per_link))
            dirty.update((v.ns_a, v.ns_b))
        for side in ("a", "b"):
            ns, name, mac, master = _veth_end(v, side)
            if fresh or old != v or ns in dirty:
                link_sets[ns][name] = ("link", name, v.mtu, mac, master, v.alias)

    # deletions of addresses etc. (computed before running anything)
    P_ad, D_ad = index(prev.all_addresses()), index(desired.all_addresses())
    for k, a in P_ad.items():
        if a.ns in live_set and k not in D_ad:
            dels[a.ns].append(f"addr del {a.cidr} dev {a.dev}")
    P_rt, D_rt = index(prev.routes), index(desired.routes)
    for k, r in P_rt.items():
        if r.ns in live_set and k not in D_rt:
            dels[r.ns].insert(0, _route_args(r, "del"))
    P_nb, D_nb = index(prev.neighbours), index(desired.neighbours)
    for k, n in P_nb.items():
        if n.ns in live_set and k not in D_nb:
            dels[n.ns].append(f"neigh del {n.ip} dev {n.dev}")
    P_ru, D_ru = index(prev.rules), index(desired.rules)
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
        for dev, op in link_sets[ns].items():
            if dev not in brs:
                o += [("noipv6", dev), op] if ns in per_link else [op]
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
        if ns in new_set:  # the namespace-wide ones were set when it was created (``early_sysctls``)
            changed[ns] = {k: v for k, v in d.sysctls.items() if k not in early_sysctls(d.sysctls)}
        else:
            changed[ns] = {k: v for k, v in d.sysctls.items() if p is None or p.sysctls.get(k) != v}

    # 6. nft: one atomic transaction per namespace, loaded (namespaces concurrently) while the
    # addresses/routes/sysctls are being set: tables name interfaces, which exist by now
    P_nt, D_nt = index(prev.nft_tables), index(desired.nft_tables)
    scripts: dict[str, list[str]] = {}
    for k, t in P_nt.items():
        if t.ns in live_set and k not in D_nt:
            scripts.setdefault(t.ns, []).append(
                f"table {t.family} {t.name} {{}}\ndelete table {t.family} {t.name}\n")
    for k, t in D_nt.items():
        if P_nt.get(k) != t or t.ns in new_set or t.ns in relinked:
            scripts.setdefault(t.ns, []).append(t.load_script())
            nft_loaded.append(f"{t.ns}:{t.family} {t.name}")
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
    touched = set(ops) | set(scripts) | {ns for ns, values in changed.items() if values}
    return touched | {ns for ns in live if dels[ns]}


def early_sysctls(sysctls: dict[str, str]) -> dict[str, str]:
    """The namespace-wide sysctls (not naming one interface): they can be set before any link."""
    return {k: v for k, v in sysctls.items()
            if ".conf." not in k or ".conf.all." in k or ".conf.default." in k}
