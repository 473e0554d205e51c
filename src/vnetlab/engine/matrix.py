"""Reachability between every pair of endpoints, computed once per class of endpoints.

Two endpoints are in one class when nothing can tell them apart: the same kind, subnet,
NIC NSG and listening services, and their addresses fall inside exactly the same prefixes
named anywhere in the lab (NSG rules, routes, next hops, VNet and subnet ranges). A trace
between two representatives then answers for every pair of members.

The answer has one shape at any size::

    {"ports": ["80"], "endpoints": 3, "traces": 2,
     "classes": [{"kind": "vm", "subnet": "vnet1/default", "members": ["vm1", "vm2"]},
                 {"kind": "webapp", "subnet": "vnet1/integration", "members": ["app1"]}],
     "default": {"80": "TimedOut"},
     "cells": [{"source": 1, "destination": 0, "verdicts": {"80": "Connected"}}]}

``cells`` lists the class pairs (indexes into ``classes``) whose verdicts differ from
``default``, the most common verdicts; every other pair of distinct endpoints has ``default``.
``expand=True`` adds ``pairs``: every pair of endpoints by name with its verdicts.

``paas=True`` adds the lab's PaaS endpoints as destinations only (they open no connection): each
public endpoint (kind ``storage_account``, ``sql_server``, ``key_vault``) and each private endpoint
(kind ``private_endpoint``, named by the PE) is a class of its own, after the source classes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from ipaddress import IPv4Network

from ..bulk import bulk
from ..model.errors import InvalidPort
from .network import Endpoint, LabView
from .security import flow_protocol, is_public
from .trace import trace

_DOTTED = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(?:/([0-9]{1,2}))?")


def _network(prefix: str) -> tuple[int, int] | None:
    """(mask, network) of a prefix or address, as ``IPv4Network(prefix, strict=False)`` reads it;
    None for what is not one (a service tag). The a.b.c.d/n form is read without building an
    IPv4Network: a large lab names hundreds of thousands of prefixes."""
    m = _DOTTED.fullmatch(prefix)
    if m and all(len(o) == 1 or o[0] != "0" for o in m.groups()[:4]):
        octets = [int(o) for o in m.groups()[:4]]
        length = int(m.group(5)) if m.group(5) is not None else 32
        if max(octets) <= 255 and length <= 32:
            ip = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
            mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
            return mask, ip & mask
    try:
        n = IPv4Network(prefix, strict=False)
    except ValueError:
        return None  # service tags: they depend on the VNet, which the subnet already pins
    return int(n.netmask), int(n.network_address)


def _prefixes(net: LabView) -> dict[int, set[int]]:
    topo = net.topo
    found: set[str] = set()
    for nsg in topo.network_security_groups:
        for rule in nsg.security_rules:
            found.update(rule.sources())
            found.update(rule.destinations())
    for rt in topo.route_tables:
        for r in rt.routes:
            found.add(r.address_prefix)
            if r.next_hop_ip_address:
                found.add(r.next_hop_ip_address)
    for view in net.subnets.values():
        found.update(view.subnet.prefixes)
    by_mask: dict[int, set[int]] = {}
    for p in found:
        parsed = _network(p.strip())
        if parsed is not None:
            by_mask.setdefault(parsed[0], set()).add(parsed[1])
    return by_mask


def _signature(ep: Endpoint, prefixes: dict[int, set[int]], net: LabView) -> tuple:
    if ep.kind != "vm":
        return (ep.kind, ep.name.lower())
    ip = int(ep.ip)
    atoms = tuple(sorted((mask, ip & mask) for mask, nets in prefixes.items() if ip & mask in nets))
    services = frozenset(net.services_of(ep.nic) or ())
    return ("vm", ep.nic.subnet.lower(), (ep.nic.network_security_group or "").lower(),
            ep.nic.enable_ip_forwarding, net.guest_forwards(ep.nic), services, atoms)


def _dropped_by_route(net: LabView, src: Endpoint):
    """(a key, a function telling without a full trace that the source's route to an address drops
    it: next hop None, or a private address sent to the internet; TimedOut whatever the port).
    Sources with the same key drop the same addresses."""
    if src.kind == "webapp":
        sb = net.sandbox(src.app)
        view = net.subnet_view(sb.integration_subnet) if sb.integration_subnet else None

        def app_drops(ip) -> bool:
            route = sb.lookup(ip)
            if route is None or route.iface != sb.vnet_iface:
                return not is_public(int(ip))
            hop = view.route_for(ip)
            return hop is None or hop.next_hop_type == "None"
        return ("webapp", src.name.lower()), app_drops
    view = net.subnet_view(src.subnet_ref)
    def vm_drops(ip) -> bool:
        hop = view.route_for(ip)
        return hop is None or hop.next_hop_type == "None" or (hop.next_hop_type == "Internet" and not is_public(int(ip)))
    return ("routes", tuple(view.routes)), vm_drops


def parse_flows(specs: list[str]) -> list[tuple[str, int | None]]:
    """(protocol, port) of each ``--ports`` item: ``80``, ``tcp/80``, ``udp/53`` or ``icmp``."""
    out = []
    for spec in specs:
        proto, _, num = spec.strip().rpartition("/")
        if not proto and num.lower() == "icmp":
            out.append(("Icmp", None))
            continue
        protocol, port = flow_protocol(proto or "Tcp"), num.strip()
        if protocol == "Icmp" or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidPort(f"'{spec}' is not a port: use numbers, udp/53 or icmp.")
        out.append((protocol, int(port)))
    return out


def endpoint_classes(net: LabView, endpoints: list[Endpoint]) -> list[list[Endpoint]]:
    prefixes = _prefixes(net)
    classes: dict[tuple, list[Endpoint]] = {}
    for ep in endpoints:
        classes.setdefault(_signature(ep, prefixes, net), []).append(ep)
    return list(classes.values())


PAAS_KIND = {"storage_accounts": "storage_account", "sql_servers": "sql_server", "key_vaults": "key_vault",
             "web_apps": "web_app"}


def paas_destinations(net: LabView) -> list[Endpoint]:
    """The lab's PaaS endpoints as matrix destinations: public endpoints, then private endpoints."""
    out = []
    for ep in net.paas.endpoints():
        pe = ep.private_endpoint
        if pe is None:
            out.append(Endpoint(PAAS_KIND[ep.kind], ep.name, ep.ip))
        else:
            out.append(Endpoint("private_endpoint", pe.name, ep.ip, pe.subnet))
    return out


def class_cells(net: LabView, groups: list[list[Endpoint]], flows: list[tuple[str, int | None]],
                progress: Callable[[int, int], None] | None = None, sources: int | None = None,
                ) -> tuple[dict[tuple[int, int], tuple[str, ...]], int]:
    """(class pair -> verdicts per flow, traces run) for the pairs a route does not drop; every other
    pair of distinct endpoints is TimedOut whatever the port, without a trace. ``progress(done, total)``
    is told after each source class. Only the first ``sources`` classes (all by default) are sources."""
    cells: dict[tuple[int, int], tuple[str, ...]] = {}
    reachable: dict[tuple, list[int]] = {}  # per route table: the classes it does not drop
    sources = len(groups) if sources is None else sources
    for i, src_members in enumerate(groups[:sources]):
        src = src_members[0]
        key, drops = _dropped_by_route(net, src)
        if key not in reachable:  # members of a class fall in the same route prefixes
            reachable[key] = [j for j, members in enumerate(groups) if not drops(members[0].ip)]
        for j in reachable[key]:
            dst_members = groups[j]
            dst = dst_members[1] if i == j and len(dst_members) > 1 else dst_members[0]
            if src is not dst:
                cells[(i, j)] = tuple(str(trace(net, src.name, str(dst.ip), n, p).verdict) for p, n in flows)
        if progress is not None:
            progress(i + 1, sources)
    return cells, len(cells)


@bulk()
def matrix(net: LabView, ports: list[str], expand: bool = False,
           progress: Callable[[int, int], None] | None = None, paas: bool = False) -> dict:
    flows = parse_flows(ports)
    labels = [_label(p, n) for p, n in flows]
    endpoints = net.endpoints()
    groups = endpoint_classes(net, endpoints)
    sources = len(groups)
    extra = paas_destinations(net) if paas else []
    groups += [[ep] for ep in extra]
    traced, count = class_cells(net, groups, flows, progress, sources)
    dropped = tuple("TimedOut" for _ in flows)
    # class pairs with 2 endpoints: a source class to any class, itself only with 2 members
    pairs = sources * len(groups) - sum(1 for members in groups[:sources] if len(members) == 1)
    tally = Counter(traced.values())
    tally[dropped] += pairs - len(traced)
    default = max(tally, key=tally.__getitem__) if pairs else dropped
    cells = [(i, j, v) for (i, j), v in traced.items() if v != default]
    if default != dropped:  # the dropped pairs are not the rule: list them too
        cells += [(i, j, dropped) for i in range(sources) for j in range(len(groups))
                  if (i, j) not in traced and (i != j or len(groups[i]) > 1)]
    result = {
        "ports": labels, "endpoints": len(endpoints) + len(extra), "traces": count * len(flows),
        "classes": [{"kind": members[0].kind, "subnet": members[0].subnet_ref,
                     "members": [ep.name for ep in members]} for members in groups],
        "default": dict(zip(labels, default, strict=True)),
        "cells": [{"source": i, "destination": j, "verdicts": dict(zip(labels, v, strict=True))}
                  for i, j, v in sorted(cells)],
    }
    if expand:
        index = {id(ep): k for k, members in enumerate(groups) for ep in members}
        result["pairs"] = [{"source": s.name, "destination": d.name,
                            "verdicts": dict(zip(labels, traced.get((index[id(s)], index[id(d)]), dropped),
                                                 strict=True))}
                           for s in endpoints for d in endpoints + extra if s is not d]
    return result


def _label(protocol: str, port: int | None) -> str:
    return "icmp" if protocol == "Icmp" else (f"udp/{port}" if protocol == "Udp" else str(port))
