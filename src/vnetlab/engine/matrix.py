"""Reachability between every pair of endpoints, computed once per class of endpoints.

Two endpoints are in one class when nothing can tell them apart: the same kind, subnet,
NIC NSG and listening services, and their addresses fall inside exactly the same prefixes
named anywhere in the lab (NSG rules, routes, next hops, VNet and subnet ranges). A trace
between two representatives then answers for every pair of members. Fewer traces still are run:
an address is compared as a source only with rules' source fields, as a destination only with
their destination fields, and (without appliances) only with the rules of the NSGs the flow
meets, so one trace (``verdict``: the trace's walk without its explanation) answers for every
class pair that is alike in what matters to it. ``traces`` counts the traces run.

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

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

from ..bulk import bulk
from ..model.errors import InvalidPort
from ..parallel import fork_map, worker_count
from .network import Endpoint, LabView, SubnetView
from .security import HOST_VIP, PLATFORM_TAGS, PRIVATE_RANGES, flow_protocol, is_public, prefix_bits
from .trace import verdict

Prefixes = dict[int, set[int]]  # mask -> networks
Atom = tuple[int, int]          # (mask, network): a prefix an address falls in
NsgSide = tuple[str, str]       # (NSG name in lower case, direction)
Flow = tuple[str, int | None]   # (protocol, port) as parse_flows gives it


@dataclass
class _Named:
    """The prefixes an endpoint's address is compared with as a source (``sources``: NSG rules' source
    fields) and as a destination (``destinations``: their destination fields), both with ``fixed``:
    every route, next hop, subnet and address space, the addresses of a NIC holding a next hop, the
    fixed ranges of service tags and of the internet. (A service tag named by a rule depends on the
    VNet, which the subnet pins.) ``named_by``: which NSG sides name each destination prefix."""
    sources: Prefixes
    destinations: Prefixes
    fixed: set[Atom]
    named_by: dict[Atom, frozenset[NsgSide]]
    appliances: bool   # some route goes through an appliance, whose NSGs see other endpoints' flows


def _named(net: LabView, flows: list[Flow] | None = None) -> _Named:
    """The prefixes that can tell endpoints apart; with ``flows``, only the rules that can match one of
    them name any (a rule on other ports or protocols never decides one of these flows)."""
    topo = net.topo
    sources: set[str] = set()
    named: dict[str, set[NsgSide]] = {}
    for nsg in topo.network_security_groups:
        low = nsg.name.lower()
        matching = None if flows is None else frozenset().union(*(net.rules_matching(nsg, protocol, port)
                                                                  for protocol, port in flows))
        for rule in nsg.security_rules:
            if matching is not None and id(rule) not in matching:  # may_match none of the flows
                continue
            sources.update(rule.sources())
            side = (low, rule.direction)
            for value in rule.destinations():
                named.setdefault(value, set()).add(side)
    fixed: set[str] = {str(HOST_VIP), *map(str, PRIVATE_RANGES), *(str(n) for nets in PLATFORM_TAGS.values()
                                                                    for n in nets)}
    hops: set[str] = set()
    for rt in topo.route_tables:
        for r in rt.routes:
            fixed.add(r.address_prefix)
            if r.next_hop_ip_address:
                hops.add(r.next_hop_ip_address.strip())
    fixed |= hops
    for nic in topo.network_interfaces:  # an appliance is the endpoint holding any of its NIC's addresses
        if hops.intersection(nic.addresses):
            fixed.update(nic.addresses)
    for vnet in topo.virtual_networks:
        fixed.update(vnet.address_space)
    for view in net.subnets.values():
        fixed.update(view.subnet.prefixes)
    atoms = {value: _atom(value) for value in sources.union(named, fixed)}
    named_by: dict[Atom, set[NsgSide]] = {}
    for value, sides in named.items():
        atom = atoms[value]
        if atom is not None:
            named_by.setdefault(atom, set()).update(sides)
    appliances = any(r.next_hop_type == "VirtualAppliance" for rt in topo.route_tables for r in rt.routes)
    return _Named(_by_mask(sources | fixed, atoms), _by_mask(set(named) | fixed, atoms),
                  {a for a in map(atoms.get, fixed) if a}, {atom: frozenset(sides) for atom, sides in named_by.items()},
                  appliances)


def _atom(prefix: str) -> Atom | None:
    parsed = prefix_bits(prefix.strip())  # None for a service tag
    return None if parsed is None else (parsed[1], parsed[0])


def _by_mask(found: set[str], atoms: dict[str, Atom | None]) -> Prefixes:
    by_mask: Prefixes = {}
    for atom in map(atoms.get, found):
        if atom is not None:
            by_mask.setdefault(atom[0], set()).add(atom[1])
    return by_mask


def _atoms(ip: int, prefixes: Prefixes) -> tuple[Atom, ...]:
    return tuple(sorted((mask, ip & mask) for mask, nets in prefixes.items() if ip & mask in nets))


def _signatures(ep: Endpoint, named: _Named, net: LabView) -> tuple[tuple, tuple]:
    """(as a source, as a destination): two endpoints with the same pair answer alike in every flow."""
    if ep.kind != "vm":
        one = (ep.kind, ep.name.lower())
        return one, one
    ip = int(ep.ip)
    services = frozenset(net.services_of(ep.nic) or ())
    common = ("vm", ep.nic.subnet.lower(), (ep.nic.network_security_group or "").lower(),
              ep.nic.enable_ip_forwarding, net.guest_forwards(ep.nic), services,
              (ep.nic.public_ip_address or "").lower())   # its internet egress (engine.outbound)
    return common + (_atoms(ip, named.sources),), common + (_atoms(ip, named.destinations),)


def _nsg_sides(net: LabView, ep: Endpoint, direction: str) -> frozenset[NsgSide]:
    """The NSGs (with ``direction``) an endpoint's own packets meet: its NIC's and its subnet's; a web
    app's integration subnet's."""
    if ep.kind == "webapp":
        sb = net.sandbox(ep.app)
        names = [net.subnet_view(sb.integration_subnet).subnet.network_security_group] if sb.integration_subnet else []
    else:
        names = [ep.nic.network_security_group, net.subnet_view(ep.nic.subnet).subnet.network_security_group]
    return frozenset((name.lower(), direction) for name in names if name)


def _dropped_by_route(net: LabView, src: Endpoint, routes_key: Callable[[SubnetView], tuple]):
    """(a key, a function telling without a full trace that the source's route to an address (an int)
    drops it: next hop None, or a private address sent to the internet; TimedOut whatever the port).
    Sources with the same key drop the same addresses. ``routes_key``: a subnet's routes, as a key."""
    if src.kind == "webapp":
        sb = net.sandbox(src.app)
        view = net.subnet_view(sb.integration_subnet) if sb.integration_subnet else None
        vnet_iface = sb.vnet_iface

        def app_drops(ip: int) -> bool:
            route = sb.lookup(ip)
            if route is None or route.iface != vnet_iface:
                return not is_public(ip)
            hop = view.route_for(ip)
            return hop is None or hop.next_hop_type == "None"
        into_vnet = tuple((r.destination, r.iface == vnet_iface) for r in sb.routes)  # what app_drops reads
        return ("webapp", into_vnet, view and routes_key(view)), app_drops
    view = net.subnet_view(src.subnet_ref)
    def vm_drops(ip: int) -> bool:
        hop = view.route_for(ip)
        return hop is None or hop.next_hop_type == "None" or (hop.next_hop_type == "Internet" and not is_public(ip))
    return ("routes", routes_key(view)), vm_drops


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


class EndpointClass(NamedTuple):
    members: list[Endpoint]
    as_source: tuple        # signature as a source
    as_destination: tuple   # signature as a destination
    sends_through: frozenset[NsgSide]   # the outbound NSGs its members' packets meet
    # as a destination, for a source: its signature without the prefixes only other NSGs name, and
    # those prefixes with the NSG sides naming them (they matter to a source that meets one of them)
    destination_base: tuple
    named_elsewhere: tuple[tuple[Atom, frozenset[NsgSide]], ...]
    # False: a PaaS service admits by the source's own address, which the source signature does not
    # hold: every source class is traced to it on its own
    shared: bool = True


def endpoint_classes(net: LabView, endpoints: list[Endpoint], flows: list[Flow] | None = None) -> list[EndpointClass]:
    """The endpoints in classes that answer alike: in every flow, or (``flows``) in those flows."""
    named = _named(net, flows)
    classes: dict[tuple, EndpointClass] = {}
    for ep in endpoints:
        as_source, as_destination = _signatures(ep, named, net)
        if (as_source, as_destination) not in classes:
            classes[(as_source, as_destination)] = _endpoint_class(net, ep, named, as_source, as_destination)
        classes[(as_source, as_destination)].members.append(ep)
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


def _endpoint_class(net: LabView, ep: Endpoint, named: _Named, as_source: tuple, as_destination: tuple) -> EndpointClass:
    base, elsewhere = as_destination, ()
    if ep.kind == "vm" and not named.appliances:
        receives_through = _nsg_sides(net, ep, "Inbound")
        atoms = as_destination[-1]

        def always(atom: Atom) -> bool:
            return atom in named.fixed or not named.named_by.get(atom, frozenset()).isdisjoint(receives_through)
        base = as_destination[:-1] + (tuple(a for a in atoms if always(a)),)
        elsewhere = tuple((a, named.named_by[a]) for a in atoms if not always(a))
    return EndpointClass([], as_source, as_destination, _nsg_sides(net, ep, "Outbound"), base, elsewhere)


def destination_only(ep: Endpoint) -> EndpointClass:
    """A class of one endpoint that is only a destination (a PaaS endpoint)."""
    key = (ep.kind, ep.name.lower())
    return EndpointClass([ep], key, key, frozenset(), key, (), shared=False)


def class_cells(net: LabView, classes: list[EndpointClass], flows: list[tuple[str, int | None]],
                progress: Callable[[int, int], None] | None = None, sources: int | None = None,
                workers: int | None = None) -> tuple[dict[tuple[int, int], tuple[str, ...]], int]:
    """(class pair -> verdicts per flow, traces run) for the pairs a route does not drop; every other
    pair of distinct endpoints is TimedOut whatever the port, without a trace. A destination's address
    is compared only with the source's outbound NSG rules and its own inbound ones (and routes), unless
    an appliance forwards: for one source, the destination classes that differ only in addresses other
    NSGs name answer alike, and are traced once. ``progress(done, total)`` is told after each source class
    (after each worker's share when shared). Only the first ``sources`` classes (all by default) are sources.

    ``workers`` (by default ``parallel.worker_count``): processes sharing the source classes. The sources
    that route alike (one subnet's routes, or one app's) go to one worker, so what they share (the
    destinations their routes drop, the traces of sources alike) is worked out once; the answer is
    the same as one process's."""
    sources = len(classes) if sources is None else sources
    workers = worker_count(sources) if workers is None else workers
    routing = _routing(net, classes, sources)
    if workers <= 1:
        return _cells_of(net, classes, flows, routing, range(sources), progress, sources)
    shares = _shares(routing, workers)
    finished = [0]

    def done(k: int) -> None:
        finished[0] += len(shares[k])
        if progress is not None:
            progress(finished[0], sources)
    answers = fork_map(lambda share: _cells_of(net, classes, flows, routing, share), shares, done)
    # the pairs in the order one process finds them; each memo key is traced in one worker only
    cells = dict(sorted(pair for part, _ in answers for pair in part.items()))
    return cells, sum(count for _, count in answers)


Routing = list[tuple[tuple, Callable[[int], bool]]]   # per source class: _dropped_by_route's (key, drops)


def _routing(net: LabView, classes: list[EndpointClass], sources: int) -> Routing:
    """``_dropped_by_route`` of each source class's first member; a subnet's routes made a key once."""
    routes_keys: dict[str, tuple] = {}

    def routes_key(view: SubnetView) -> tuple:
        key = routes_keys.get(view.ref)
        if key is None:
            key = routes_keys[view.ref] = tuple(view.routes)
        return key
    return [_dropped_by_route(net, classes[i].members[0], routes_key) for i in range(sources)]


def _shares(routing: Routing, workers: int) -> list[list[int]]:
    """The source classes in ``workers`` shares (indexes, ascending): the classes of one route key
    together, the largest groups first, each to the share with the fewest classes so far."""
    groups: dict[tuple, list[int]] = {}
    for i, (key, _) in enumerate(routing):
        groups.setdefault(key, []).append(i)
    shares: list[list[int]] = [[] for _ in range(workers)]
    for group in sorted(groups.values(), key=lambda g: (-len(g), g[0])):
        min(shares, key=len).extend(group)
    return [sorted(share) for share in shares]


def _cells_of(net: LabView, classes: list[EndpointClass], flows: list[tuple[str, int | None]], routing: Routing,
              share: Iterable[int], progress: Callable[[int, int], None] | None = None, total: int = 0,
              ) -> tuple[dict[tuple[int, int], tuple[str, ...]], int]:
    """``class_cells`` for the source classes in ``share`` (indexes, ascending)."""
    cells: dict[tuple[int, int], tuple[str, ...]] = {}
    traced: dict[tuple[tuple, tuple], tuple[str, ...]] = {}
    reachable: dict[tuple, list[int]] = {}  # per route key: the classes its routes do not drop
    addresses = [int(c.members[0].ip) for c in classes]  # members of a class fall in the same route prefixes
    for i in share:
        source = classes[i]
        src = source.members[0]
        key, drops = routing[i]
        if key not in reachable:
            reachable[key] = [j for j, ip in enumerate(addresses) if not drops(ip)]
        meets = source.sends_through
        for j in reachable[key]:
            destination = classes[j]
            dst_members = destination.members
            dst = dst_members[1] if i == j and len(dst_members) > 1 else dst_members[0]
            if src is dst:
                continue
            seen_as = destination.destination_base
            if destination.named_elsewhere:
                seen_as += tuple(a for a, sides in destination.named_elsewhere if not sides.isdisjoint(meets))
            memo = (source.as_source if destination.shared else i, seen_as)
            verdicts = traced.get(memo)
            if verdicts is None:
                verdicts = traced[memo] = tuple(str(verdict(net, src, dst.ip, n, p)) for p, n in flows)
            cells[(i, j)] = verdicts
        if progress is not None:
            progress(i + 1, total)
    return cells, len(traced)


@bulk()
def matrix(net: LabView, ports: list[str], expand: bool = False,
           progress: Callable[[int, int], None] | None = None, paas: bool = False,
           workers: int | None = None) -> dict:
    flows = parse_flows(ports)
    labels = [_label(p, n) for p, n in flows]
    endpoints = net.endpoints()
    classes = endpoint_classes(net, endpoints, flows)
    sources = len(classes)
    extra = paas_destinations(net) if paas else []
    classes += [destination_only(ep) for ep in extra]
    groups = [c.members for c in classes]
    traced, count = class_cells(net, classes, flows, progress, sources, workers)
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
