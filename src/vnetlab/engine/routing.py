"""Effective routes of a subnet, and longest-prefix lookup.

Every subnet gets system routes (source ``Default``): each address range of its VNet with
next hop ``VnetLocal``, ``0.0.0.0/0`` to ``Internet``, and ``None`` (drop) for 10/8,
172.16/12, 192.168/16 and 100.64/10, except where the VNet's own range is or contains one
of them. Each *connected* peering (both directions exist) adds the remote VNet's ranges with
next hop ``VNetPeering``; peering is not transitive, so only direct peers appear. A route
table attached to the subnet adds user routes (source ``User``). The longest prefix wins;
on an equal prefix a user route beats a system route, and the loser shows ``Invalid``.
https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview

Private endpoints and service endpoints add system routes too (``InterfaceEndpoint`` /32s,
``VirtualNetworkServiceEndpoint``): which ones, and when a UDR invalidates a PE's, is decided in
``engine.paas``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from ipaddress import IPv4Address, IPv4Network

from ..model import AzureError, Topology, VirtualNetwork, VirtualNetworkPeering
from . import paas

RESERVED_NONE = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
SOURCE_RANK = {"User": 0, "VirtualNetworkGateway": 1, "Default": 2}


@dataclass(frozen=True)
class EffectiveRoute:
    source: str                 # Default | User
    state: str                  # Active | Invalid
    address_prefix: str
    next_hop_type: str          # VnetLocal | VNetPeering | Internet | None | VirtualAppliance | VirtualNetworkGateway
    #                             | InterfaceEndpoint | VirtualNetworkServiceEndpoint
    next_hop_ip: str | None = None
    name: str | None = None     # the user route's name
    route_table: str | None = None
    remote_virtual_network: str | None = None  # for VNetPeering

    @property
    def network(self) -> IPv4Network:
        return IPv4Network(self.address_prefix)

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def reverse_peering(topo: Topology, vnet: VirtualNetwork, peering) -> VirtualNetworkPeering | None:
    """The remote VNet's peering back to ``vnet``, if the remote VNet and that peering exist."""
    remote = topo.vnet(peering.remote_virtual_network)
    if remote is None:
        return None
    low = vnet.name.lower()
    return next((p for p in remote.peerings if p.remote_virtual_network.lower() == low), None)


def connected_peers(topo: Topology, vnet: VirtualNetwork) -> list[tuple[VirtualNetwork, object]]:
    """Peered VNets whose peering exists in both directions (Azure's ``Connected``)."""
    out = []
    for peering in vnet.peerings:
        if peering_state(topo, vnet, peering) == "Connected":
            out.append((topo.vnet(peering.remote_virtual_network), peering))
    return out


def peering_state(topo: Topology, vnet: VirtualNetwork, peering) -> str:
    back = reverse_peering(topo, vnet, peering)
    if peering.peering_state == "Disconnected" or topo.vnet(peering.remote_virtual_network) is None:
        return "Disconnected"
    if back is None:
        return "Initiated"
    return "Disconnected" if back.peering_state == "Disconnected" else "Connected"


def settle_peerings(new: Topology, old: Topology | None) -> None:
    """Set every peering's state for a change from ``old`` to ``new``, as Azure does:
    a peering whose remote VNet or reverse peering is deleted (or deleted and created again)
    becomes Disconnected and stays so until it is created again or changed; creating a peering
    whose remote side is Disconnected fails with RemotePeeringIsDisconnected.
    https://learn.microsoft.com/azure/virtual-network/virtual-network-manage-peering#requirements-and-constraints"""
    before = _peerings_by_key(old) if old is not None else {}
    written = set()
    for vnet in new.virtual_networks:
        for p in vnet.peerings:
            key = (vnet.name.lower(), p.name.lower())
            prior = before.get(key)
            if prior is None or prior.settings() != p.settings():
                written.add(key)
            p.peering_state = _disconnected_or_none(new, old, vnet, p, prior, key in written)
    for vnet in new.virtual_networks:
        for p in vnet.peerings:
            key = (vnet.name.lower(), p.name.lower())
            back = reverse_peering(new, vnet, p)
            if key in written and back is not None and back.peering_state == "Disconnected":
                _refuse_disconnected_remote(new, vnet, p, back)
    for vnet in new.virtual_networks:
        for p in vnet.peerings:
            if p.peering_state is None and new.vnet(p.remote_virtual_network) is not None:
                p.peering_state = "Connected" if reverse_peering(new, vnet, p) is not None else "Initiated"


def _peerings_by_key(topo: Topology) -> dict:
    return {(v.name.lower(), p.name.lower()): p for v in topo.virtual_networks for p in v.peerings}


def _disconnected_or_none(new: Topology, old: Topology | None, vnet, p, prior, written: bool) -> str | None:
    """Disconnected, or None when the state follows from the reverse peering."""
    if written or prior is None:
        return None  # a new peering to a missing VNet stays None: validation refuses it
    if new.vnet(p.remote_virtual_network) is None:
        return "Disconnected"
    if prior.peering_state == "Disconnected":
        return "Disconnected"
    old_vnet = old.vnet(vnet.name) if old is not None else None
    was_connected = old_vnet is not None and reverse_peering(old, old_vnet, prior) is not None
    if was_connected and reverse_peering(new, vnet, p) is None:
        return "Disconnected"
    return None


def _refuse_disconnected_remote(topo: Topology, vnet, p, back) -> None:
    remote = topo.vnet(p.remote_virtual_network)
    mine = topo.id_of("virtual_networks", vnet, "virtualNetworkPeerings", p.name)
    theirs = topo.id_of("virtual_networks", remote, "virtualNetworkPeerings", back.name)
    raise AzureError(f"Cannot create or update peering {mine} because remote peering {theirs} referencing parent "
                     f"virtual network {topo.id_of('virtual_networks', vnet)} is in Disconnected state. Update or "
                     "re-create the remote peering to get it back to Initiated state. Peering gets Disconnected when "
                     "remote vnet or remote peering is deleted and re-created.", "RemotePeeringIsDisconnected")


def system_routes(topo: Topology, vnet: VirtualNetwork) -> list[EffectiveRoute]:
    routes = [EffectiveRoute("Default", "Active", p, "VnetLocal") for p in vnet.ipv4_space]
    for remote, _ in connected_peers(topo, vnet):
        routes += [EffectiveRoute("Default", "Active", p, "VNetPeering", remote_virtual_network=remote.name)
                   for p in remote.ipv4_space]
    routes.append(EffectiveRoute("Default", "Active", "0.0.0.0/0", "Internet"))
    own = vnet.networks
    for prefix in RESERVED_NONE:
        net = IPv4Network(prefix)
        # "If the VNet range includes, or is the same as, a reserved prefix, Azure removes the None route"
        if not any(net.subnet_of(o) for o in own):
            routes.append(EffectiveRoute("Default", "Active", prefix, "None"))
    return routes


def gateway_routes(topo: Topology, vnet: VirtualNetwork, subnet) -> list[EffectiveRoute]:
    """The prefixes of the local network gateways connected to the VNet's gateway (its own, or a peer's
    by gateway transit), source and next hop ``VirtualNetworkGateway``; none on a subnet whose route
    table disables gateway route propagation (engine.gateways).
    https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview#virtual-network-gateway"""
    from . import gateways
    found = gateways.gateway_for(topo, vnet)
    if found is None or not gateways.propagates(topo, subnet):
        return []
    hop = gateways.next_hop_ip(topo, found[0])
    return [EffectiveRoute("VirtualNetworkGateway", "Active", prefix, "VirtualNetworkGateway", hop)
            for prefix, _ in gateways.gateway_prefixes(topo, found[0])]


def user_routes(topo: Topology, route_table_name: str | None) -> list[EffectiveRoute]:
    table = topo.find("route_tables", route_table_name)
    if table is None:
        return []
    return [EffectiveRoute("User", "Active", str(IPv4Network(r.address_prefix, strict=False)), r.next_hop_type,
                           r.next_hop_ip_address, r.name, table.name) for r in table.routes]


def overrides_default_route(routes: list[EffectiveRoute]) -> bool:
    """A user route for 0.0.0.0/0 to an appliance or a gateway: "Azure sends all traffic to the
    next hop type specified in the route", so the default None routes of the private ranges no
    longer apply (effective routes show them Invalid), and a spoke reaches another spoke through
    the hub's appliance with that one route.
    https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview#default-route"""
    return any(r.source == "User" and r.address_prefix == "0.0.0.0/0"
               and r.next_hop_type in ("VirtualAppliance", "VirtualNetworkGateway") for r in routes)


def resolve(routes: list[EffectiveRoute]) -> list[EffectiveRoute]:
    """Mark, for each prefix, the best source Active and the others Invalid."""
    best: dict[str, EffectiveRoute] = {}
    for r in routes:
        cur = best.get(r.address_prefix)
        if cur is None or SOURCE_RANK[r.source] < SOURCE_RANK[cur.source]:
            best[r.address_prefix] = r
    reserved_off = overrides_default_route(routes)

    def active(r: EffectiveRoute) -> bool:
        if reserved_off and r.source == "Default" and r.next_hop_type == "None" and r.address_prefix in RESERVED_NONE:
            return False
        return best[r.address_prefix] is r

    return [r if active(r) else EffectiveRoute(**{**r.__dict__, "state": "Invalid"}) for r in routes]


def endpoint_routes(topo: Topology, vnet: VirtualNetwork, subnet, endpoints: paas.EndpointRouting
                    ) -> tuple[list[EffectiveRoute], dict[str, object]]:
    """The subnet's private endpoint /32 routes (every PE of its VNet and of connected peers) and
    service endpoint routes (that subnet only), with the PE behind each /32."""
    pes = endpoints.private_endpoint_routes(vnet, connected_peers(topo, vnet)) if endpoints.pes_in else {}
    routes = [EffectiveRoute("Default", "Active", prefix, "InterfaceEndpoint") for prefix in pes]
    routes += [EffectiveRoute("Default", "Active", prefix, "VirtualNetworkServiceEndpoint")
               for prefix in paas.service_endpoint_prefixes(topo, vnet, subnet, endpoints.public)]
    return routes, pes


def effective_routes(topo: Topology, vnet: VirtualNetwork, subnet, endpoints: paas.EndpointRouting | None = None
                     ) -> list[EffectiveRoute]:
    """``endpoints``: the lab's PaaS addresses (``paas.EndpointRouting``), built once by the caller for
    many subnets."""
    endpoints = endpoints or paas.EndpointRouting(topo)
    extra, pes = endpoint_routes(topo, vnet, subnet, endpoints)
    users = user_routes(topo, subnet.route_table)
    routes = resolve(system_routes(topo, vnet) + gateway_routes(topo, vnet, subnet) + extra + users)
    if not pes or not users:
        return routes
    return [EffectiveRoute(**{**r.__dict__, "state": "Invalid"})
            if r.next_hop_type == "InterfaceEndpoint" and r.state == "Active"
            and any(endpoints.invalidated(pes[r.address_prefix], u.address_prefix) for u in users) else r
            for r in routes]


class RouteLookup:
    """Longest-prefix match over the Active routes: one dict per prefix length."""

    def __init__(self, routes: list[EffectiveRoute]):
        by_len: dict[int, dict[int, EffectiveRoute]] = {}
        for r in routes:
            if r.state != "Active":
                continue
            net = r.network
            by_len.setdefault(net.prefixlen, {})[int(net.network_address)] = r
        self._tables = [(((1 << 32) - 1) ^ ((1 << (32 - plen)) - 1), by_len[plen])
                        for plen in sorted(by_len, reverse=True)]

    def route_for(self, ip: IPv4Address | int) -> EffectiveRoute | None:
        value = int(ip)
        for mask, table in self._tables:
            hit = table.get(value & mask)
            if hit is not None:
                return hit
        return None
