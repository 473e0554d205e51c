"""Reachability between every pair of endpoints, computed once per class of endpoints.

Two endpoints are in one class when nothing can tell them apart: the same kind, subnet,
NIC NSG and listening services, and their addresses fall inside exactly the same prefixes
named anywhere in the lab (NSG rules, routes, next hops, VNet and subnet ranges). A trace
between two representatives then answers for every pair of members.
"""

from __future__ import annotations

from ipaddress import IPv4Network

from ..model.errors import InvalidPort
from .network import Endpoint, Network
from .security import flow_protocol, is_public
from .trace import trace

EXPAND_LIMIT = 400


def _prefixes(net: Network) -> dict[int, set[int]]:
    topo = net.topo
    found: set[str] = set()
    for nsg in topo.network_security_groups:
        for rule in nsg.security_rules:
            found.update(rule.sources() + rule.destinations())
    for rt in topo.route_tables:
        for r in rt.routes:
            found.add(r.address_prefix)
            if r.next_hop_ip_address:
                found.add(r.next_hop_ip_address)
    for view in net.subnets.values():
        found.add(view.subnet.address_prefix)
    by_mask: dict[int, set[int]] = {}
    for p in found:
        try:
            n = IPv4Network(p.strip(), strict=False)
        except ValueError:
            continue  # service tags: they depend on the VNet, which the subnet already pins
        by_mask.setdefault(int(n.netmask), set()).add(int(n.network_address))
    return by_mask


def _signature(ep: Endpoint, prefixes: dict[int, set[int]], net: Network) -> tuple:
    if ep.kind != "vm":
        return (ep.kind, ep.name.lower())
    ip = int(ep.ip)
    atoms = tuple(sorted((mask, ip & mask) for mask, nets in prefixes.items() if ip & mask in nets))
    services = frozenset(net.services_of(ep.nic) or ())
    return ("vm", ep.nic.subnet.lower(), (ep.nic.network_security_group or "").lower(),
            ep.nic.enable_ip_forwarding, services, atoms)


def _dropped_by_route(net: Network, src: Endpoint):
    """A function telling, without a full trace, that the source's route to an address drops it
    (next hop None, or a private address sent to the internet): TimedOut whatever the port."""
    if src.kind == "webapp":
        sb = net.sandbox(src.app)
        view = net.subnet_view(sb.integration_subnet) if sb.integration_subnet else None

        def app_drops(ip) -> bool:
            route = sb.lookup(ip)
            if route is None or route.iface != sb.vnet_iface:
                return not is_public(int(ip))
            hop = view.lookup.lookup(ip)
            return hop is None or hop.next_hop_type == "None"
        return app_drops
    lookup = net.subnet_view(src.subnet_ref).lookup

    def vm_drops(ip) -> bool:
        hop = lookup.lookup(ip)
        return hop is None or hop.next_hop_type == "None" or (hop.next_hop_type == "Internet" and not is_public(int(ip)))
    return vm_drops


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


def matrix(net: Network, ports: list[str]) -> dict:
    flows = parse_flows(ports)
    endpoints = net.endpoints()
    prefixes = _prefixes(net)
    classes: dict[tuple, list[Endpoint]] = {}
    for ep in endpoints:
        classes.setdefault(_signature(ep, prefixes, net), []).append(ep)
    groups = list(classes.values())
    class_cells: dict[tuple[int, int], dict[str, str]] = {}
    traced = 0
    dropped_everywhere = {_label(p, n): "TimedOut" for p, n in flows}
    for i, src_members in enumerate(groups):
        src = src_members[0]
        drops = _dropped_by_route(net, src)
        for j, dst_members in enumerate(groups):
            dst = dst_members[1] if i == j and len(dst_members) > 1 else dst_members[0]
            if src is dst:
                continue
            if drops(dst.ip):
                class_cells[(i, j)] = dropped_everywhere
                continue
            traced += 1
            class_cells[(i, j)] = {_label(p, n): trace(net, src.name, str(dst.ip), n, p).verdict for p, n in flows}
    result = {"ports": [_label(p, n) for p, n in flows], "endpoints": len(endpoints), "classes": len(groups),
              "traces": traced * len(flows)}
    names = [ep.name for ep in endpoints]
    result["sources"] = result["destinations"] = names
    if len(endpoints) <= EXPAND_LIMIT:
        index = {id(ep): k for k, members in enumerate(groups) for ep in members}
        cells = {}
        for s in endpoints:
            for d in endpoints:
                if s is not d:
                    cells[f"{s.name}->{d.name}"] = class_cells[(index[id(s)], index[id(d)])]
        result["cells"] = cells
    else:
        result["class_members"] = [[ep.name for ep in members] for members in groups]
        result["class_cells"] = {f"{i}->{j}": v for (i, j), v in class_cells.items()}
    return result


def _label(protocol: str, port: int | None) -> str:
    return "icmp" if protocol == "Icmp" else (f"udp/{port}" if protocol == "Udp" else str(port))
