"""The answer to "can A reach B?": an explained trace, hop by hop, in Azure's words.

A trace walks the packet the way Azure's SDN would: the source's kernel route (for a web
app, its sandbox table), SNAT at the integration, the outbound NSGs (NIC then subnet), the
subnet's effective route, across a peering or through a network virtual appliance, the
destination's inbound NSGs (subnet then NIC), and what the destination host does with it.
The return path is walked too: replies need a route back to the address the destination saw.

Verdicts are what a real client sees: ``Connected`` (handshake or echo reply), ``Refused``
(TCP reset or ICMP port unreachable), ``TimedOut`` (silently dropped), ``Unreachable`` (the
sender's own kernel has no route). Each comes with one reason from :data:`REASONS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address

from ..model import AzureError, NetworkInterface, Topology
from ..model.errors import InvalidPort
from .network import Endpoint, Network, SubnetView
from .security import flow_protocol, is_public, nsg_chain

MAX_APPLIANCE_HOPS = 8

REASONS = {
    "Reachable": "the destination answered",
    "NoListener": "nothing listens on that port: the host answered with a reset (ICMP port unreachable for UDP)",
    "IntegrationInboundRefused": "VNet integration is outbound only: TCP to an integration address is reset",
    "IntegrationInboundNotAnswered": "VNet integration is outbound only: the integration address does not answer",
    "NsgDenied": "a network security group rule denied the flow",
    "RouteNone": "the effective route's next hop is None: Azure drops the packet",
    "PrivateAddressOnInternet": "a private destination was sent to the internet, where nothing routes it",
    "NoHostAtDestination": "no host holds the destination address",
    "NextHopUnreachable": "no network interface holds the route's next hop address",
    "NextHopNotForwarding": "the next hop's network interface does not have IP forwarding enabled",
    "ForwardedTrafficNotAllowed": "the peering does not allow forwarded traffic",
    "PeeringAccessDisabled": "the peering does not allow virtual network access",
    "NoGateway": "the route points to a virtual network gateway, which the lab does not have",
    "RoutingLoop": "the packet went through too many appliances",
    "IntegrationAddressUnavailable": "the integration subnet has no address left for this plan instance",
    "ReturnPathDropped": "the destination's reply has no route back to the address it saw",
    "NoRoute": "the sender's kernel has no route to the destination",
}
VERDICT_OF = {"Reachable": "Connected", "NoListener": "Refused", "IntegrationInboundRefused": "Refused",
              "NoRoute": "Unreachable"}


@dataclass
class Step:
    kind: str             # KernelRoute | Route | NetworkSecurityGroup | SNAT | VNetPeering | VirtualAppliance | Deliver
    resource_id: str | None
    action: str           # Forwarded | Allowed | Denied | Dropped | Translated | Delivered | Answered ...
    detail: dict
    dropped: bool = False

    def to_dict(self) -> dict:
        return {"kind": self.kind, "resource_id": self.resource_id, "action": self.action, "dropped": self.dropped,
                **self.detail}


@dataclass
class Packet:
    src: IPv4Address
    dst: IPv4Address
    protocol: str
    port: int | None
    public_src: IPv4Address | None = None   # the address used if the packet leaves to the internet
    origin_vnet: str | None = None          # where the packet entered Azure's SDN


@dataclass
class Trace:
    flow: dict
    steps: list[Step] = field(default_factory=list)
    verdict: str = "TimedOut"
    reason: str = "NoHostAtDestination"
    source_ip_seen: str | None = None
    return_path: list[Step] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"flow": self.flow, "verdict": self.verdict, "reason": self.reason,
                "explanation": REASONS[self.reason], "source_ip_seen": self.source_ip_seen,
                "steps": [s.to_dict() for s in self.steps], "return_path": [s.to_dict() for s in self.return_path]}


class _Done(Exception):
    def __init__(self, reason: str):
        self.reason = reason


def trace(net: Network | Topology, source: str, destination: str, port: int | None = None,
          protocol: str = "Tcp") -> Trace:
    net = net if isinstance(net, Network) else Network(net)
    protocol = flow_protocol(protocol)
    if protocol != "Icmp" and port is None:
        raise InvalidPort("A port is required for Tcp and Udp flows.")
    if port is not None and not 0 < port < 65536:
        raise InvalidPort(f"Port {port} is out of range 1-65535.")
    src = net.endpoint(source)
    dst_ip, dst_name = net.destination_ip(destination)
    t = Trace(flow={"source": src.name, "source_kind": src.kind, "source_ip": str(src.ip),
                    "destination": dst_name, "destination_ip": str(dst_ip), "protocol": protocol,
                    "port": port if protocol != "Icmp" else None})
    pkt = Packet(src.ip, dst_ip, protocol, port if protocol != "Icmp" else None)
    try:
        if src.kind == "webapp":
            _from_app(net, src, pkt, t)
        elif src.kind == "internet":
            raise AzureError("Flows from the internet are not modelled yet.", "InvalidSource")
        else:
            _from_nic(net, src.nic, pkt, t)
    except _Done as done:
        t.reason = done.reason
    t.verdict = VERDICT_OF.get(t.reason, "TimedOut")
    if t.verdict in ("Connected", "Refused"):
        t.source_ip_seen = str(pkt.src)
    return t


# -- sources ------------------------------------------------------------------------------
def _from_nic(net: Network, nic: NetworkInterface, pkt: Packet, t: Trace) -> None:
    view = net.subnet_view(nic.subnet)
    pkt.public_src = net.public_ip("network_interfaces", nic.name)
    pkt.origin_vnet = view.vnet.name.lower()
    _outbound_nsgs(net, view, nic, pkt, t)
    _route_from(net, view, pkt, t, hops=0)


def _from_app(net: Network, src: Endpoint, pkt: Packet, t: Trace) -> None:
    sb = net.sandbox(src.app)
    pkt.src = sb.interfaces[-1].ip if sb.integrated else sb.interfaces[0].ip
    t.flow["source_ip"] = str(pkt.src)
    route = sb.lookup(pkt.dst)
    if route is None:
        t.steps.append(Step("KernelRoute", None, "Dropped", {"sandbox": sb.app, "destination": str(pkt.dst)}, True))
        raise _Done("NoRoute")
    t.steps.append(Step("KernelRoute", net.topo.id_of("web_apps", src.app), "Forwarded",
                        {"sandbox": sb.app, "instance": sb.instance, "route": route.destination,
                         "gateway": route.gateway, "iface": route.iface}))
    pkt.public_src = sb.outbound_ip
    if route.iface != sb.vnet_iface:
        _snat(t, pkt, sb.outbound_ip, "App Service public outbound address", None)
        _to_internet(net, pkt, t)
        return
    if sb.integration_ip is None:
        raise _Done("IntegrationAddressUnavailable")
    view = net.subnet_view(sb.integration_subnet)
    _snat(t, pkt, sb.integration_ip, "VNet integration: the instance's address in the integration subnet", view.id)
    pkt.origin_vnet = view.vnet.name.lower()
    # Only the integration subnet's NSG applies to the app: there is no customer NIC.
    _nsg_check(net, view.subnet.network_security_group, "Outbound", view, pkt, t, "subnet " + view.ref)
    _route_from(net, view, pkt, t, hops=0)


def _snat(t: Trace, pkt: Packet, to: IPv4Address, why: str, resource_id: str | None) -> None:
    t.steps.append(Step("SNAT", resource_id, "Translated", {"from": str(pkt.src), "to": str(to), "why": why}))
    pkt.src = to


# -- NSGs -----------------------------------------------------------------------------------
def _nsg_check(net: Network, nsg_name: str | None, direction: str, view: SubnetView, pkt: Packet, t: Trace,
               attached_to: str) -> None:
    compiled = net.nsg(nsg_name, direction, view.vnet)
    if compiled is None:
        return
    hit = compiled.evaluate(pkt.protocol, pkt.src, pkt.dst, pkt.port)
    rule = hit.rule
    denied = rule.access == "Deny"
    t.steps.append(Step("NetworkSecurityGroup", net.topo.id_of("network_security_groups", compiled.nsg),
                        "Denied" if denied else "Allowed",
                        {"nsg": compiled.nsg.name, "attached_to": attached_to, "direction": direction,
                         "rule": rule.name, "priority": rule.priority, "access": rule.access,
                         "default_rule": hit.default}, denied))
    if denied:
        raise _Done("NsgDenied")


def _nsgs_at(net: Network, direction: str, view: SubnetView, nic: NetworkInterface, pkt: Packet, t: Trace) -> None:
    for where, name in nsg_chain(direction, nic.network_security_group, view.subnet.network_security_group):
        attached_to = "network interface " + nic.name if where == "nic" else "subnet " + view.ref
        _nsg_check(net, name, direction, view, pkt, t, attached_to)


def _outbound_nsgs(net: Network, view: SubnetView, nic: NetworkInterface, pkt: Packet, t: Trace) -> None:
    _nsgs_at(net, "Outbound", view, nic, pkt, t)


def _inbound_nsgs(net: Network, view: SubnetView, nic: NetworkInterface, pkt: Packet, t: Trace) -> None:
    _nsgs_at(net, "Inbound", view, nic, pkt, t)


# -- routing ----------------------------------------------------------------------------------
def _route_step(view: SubnetView, route, t: Trace, dropped: bool = False) -> None:
    t.steps.append(Step("Route", view.id, "Dropped" if dropped else "Forwarded",
                        {"subnet": view.ref, "address_prefix": route.address_prefix, "source": route.source,
                         "next_hop_type": route.next_hop_type, "next_hop_ip": route.next_hop_ip,
                         "route_name": route.name, "route_table": route.route_table}, dropped))


def _route_from(net: Network, view: SubnetView, pkt: Packet, t: Trace, hops: int) -> None:
    route = view.lookup.lookup(pkt.dst)
    if route is None:
        raise _Done("NoRoute")
    kind = route.next_hop_type
    _route_step(view, route, t, dropped=kind in ("None", "VirtualNetworkGateway"))
    if kind == "None":
        raise _Done("RouteNone")
    if kind == "VirtualNetworkGateway":
        raise _Done("NoGateway")
    if kind == "Internet":
        _to_internet(net, pkt, t)
    elif kind == "VnetLocal":
        _deliver(net, view.vnet, pkt, t)
    elif kind == "VNetPeering":
        remote = _cross_peering(net, view, route.remote_virtual_network, pkt, t)
        _deliver(net, remote, pkt, t)
    elif kind == "VirtualAppliance":
        _via_appliance(net, view, route, pkt, t, hops)


def _cross_peering(net: Network, view: SubnetView, remote_name: str, pkt: Packet, t: Trace):
    remote, local_peering = net.peers[view.vnet.name.lower()][remote_name.lower()]
    detail = {"from_vnet": view.vnet.name, "to_vnet": remote.name, "peering": local_peering.name}
    pid = net.topo.id_of("virtual_networks", view.vnet, "virtualNetworkPeerings", local_peering.name)
    if not net.peering_open(view.vnet.name, remote.name):
        t.steps.append(Step("VNetPeering", pid, "Dropped", detail, True))
        raise _Done("PeeringAccessDisabled")
    forwarded = pkt.origin_vnet != view.vnet.name.lower()
    if forwarded and not net.accepts_forwarded(remote.name, view.vnet.name):
        t.steps.append(Step("VNetPeering", pid, "Dropped", {**detail, "forwarded": True}, True))
        raise _Done("ForwardedTrafficNotAllowed")
    t.steps.append(Step("VNetPeering", pid, "Forwarded", detail))
    return remote


def _holder_of(net: Network, view: SubnetView, ip: IPv4Address):
    """The NIC holding ``ip`` in this VNet or a connected peer, with the VNet it is in."""
    for vnet in [view.vnet] + [r for r, _ in net.peers[view.vnet.name.lower()].values()]:
        nic = net.nic_at.get((vnet.name.lower(), int(ip)))
        if nic is not None and any(ip in n for n in vnet.networks):
            return nic, vnet
    return None, None


def _via_appliance(net: Network, view: SubnetView, route, pkt: Packet, t: Trace, hops: int) -> None:
    hop_ip = IPv4Address(route.next_hop_ip)
    nic, vnet = _holder_of(net, view, hop_ip)
    if hop_ip == pkt.dst:  # addressed to the appliance itself: delivered, across the peering if it is in a peer
        if vnet is not None and vnet is not view.vnet:
            _cross_peering(net, view, vnet.name, pkt, t)
        _deliver(net, vnet or view.vnet, pkt, t)
        return
    if nic is None or net.services_of(nic) is None:
        raise _Done("NextHopUnreachable")
    if vnet is not view.vnet:
        _cross_peering(net, view, vnet.name, pkt, t)
    nva_view = net.subnet_view(nic.subnet)
    _inbound_nsgs(net, nva_view, nic, pkt, t)
    if not nic.enable_ip_forwarding:
        t.steps.append(Step("VirtualAppliance", net.topo.id_of("network_interfaces", nic), "Dropped",
                            {"network_interface": nic.name, "ip": str(hop_ip), "enable_ip_forwarding": False}, True))
        raise _Done("NextHopNotForwarding")
    if hops + 1 > MAX_APPLIANCE_HOPS:
        raise _Done("RoutingLoop")
    t.steps.append(Step("VirtualAppliance", net.topo.id_of("network_interfaces", nic), "Forwarded",
                        {"network_interface": nic.name, "ip": str(hop_ip), "enable_ip_forwarding": True}))
    pkt.public_src = net.public_ip("network_interfaces", nic.name)
    _outbound_nsgs(net, nva_view, nic, pkt, t)
    _route_from(net, nva_view, pkt, t, hops + 1)


# -- destinations -------------------------------------------------------------------------------
def _answer(services: set[tuple[str, int]], pkt: Packet) -> str:
    if pkt.protocol == "Icmp" or (pkt.protocol, pkt.port) in services:
        return "Reachable"
    return "NoListener"


def _to_internet(net: Network, pkt: Packet, t: Trace) -> None:
    if not is_public(int(pkt.dst)):
        t.steps.append(Step("Internet", None, "Dropped", {"destination": str(pkt.dst),
                                                          "why": "private address on the internet"}, True))
        raise _Done("PrivateAddressOnInternet")
    if pkt.src != pkt.public_src:
        _snat(t, pkt, pkt.public_src, "outbound to the internet", None)
    host = net.internet_at.get(int(pkt.dst))
    if host is None:
        raise _Done("NoHostAtDestination")
    reason = _answer({(s.protocol, s.port) for s in host.services}, pkt)
    t.steps.append(Step("Deliver", None, "Answered" if reason == "Reachable" else "Reset",
                        {"host": host.name, "ip": host.ip, "internet": True}))
    raise _Done(reason)


def _deliver(net: Network, vnet, pkt: Packet, t: Trace) -> None:
    key = (vnet.name.lower(), int(pkt.dst))
    nic = net.nic_at.get(key)
    if nic is not None:
        view = net.subnet_view(nic.subnet)
        _inbound_nsgs(net, view, nic, pkt, t)
        services = net.services_of(nic)
        if services is None:
            raise _Done("NoHostAtDestination")
        reason = _answer(services, pkt)
        vm = net.vm_of_nic[nic.name.lower()]
        t.steps.append(Step("Deliver", net.topo.id_of("virtual_machines", vm), "Answered" if reason == "Reachable"
                            else "Reset", {"virtual_machine": vm.name, "ip": str(pkt.dst), "source_seen": str(pkt.src)}))
        _return_path(net, view, pkt, t)
        raise _Done(reason)
    owner = net.app_at.get(key)
    if owner is not None:
        app, instance = owner
        refused = pkt.protocol == "Tcp"
        t.steps.append(Step("Deliver", net.topo.id_of("web_apps", app), "Reset" if refused else "Dropped",
                            {"web_app": app.name, "instance": instance, "ip": str(pkt.dst),
                             "why": "VNet integration is outbound only"}, not refused))
        if refused:
            _return_path(net, net.subnet_view(app.vnet_integration), pkt, t)
        raise _Done("IntegrationInboundRefused" if refused else "IntegrationInboundNotAnswered")
    t.steps.append(Step("Deliver", None, "Dropped", {"ip": str(pkt.dst), "vnet": vnet.name,
                                                     "why": "no host holds this address"}, True))
    raise _Done("NoHostAtDestination")


def _return_path(net: Network, view: SubnetView, pkt: Packet, t: Trace) -> None:
    """Replies are not checked against NSGs (stateful) but need a route back."""
    reply = Packet(pkt.dst, pkt.src, pkt.protocol, None, origin_vnet=view.vnet.name.lower())
    sub = Trace(flow={})
    try:
        _return_route(net, view, reply, sub, 0)
    finally:
        t.return_path = sub.steps


def _return_route(net: Network, view: SubnetView, reply: Packet, t: Trace, hops: int) -> None:
    route = view.lookup.lookup(reply.dst)
    kind = route.next_hop_type if route else "None"
    ok = kind in ("VnetLocal", "VNetPeering", "VirtualAppliance") or (kind == "Internet" and is_public(int(reply.dst)))
    _route_step(view, route, t, dropped=not ok)
    if not ok:
        raise _Done("ReturnPathDropped")
    if kind == "VNetPeering":
        remote = route.remote_virtual_network
        if reply.origin_vnet != view.vnet.name.lower() and not net.accepts_forwarded(remote, view.vnet.name):
            raise _Done("ReturnPathDropped")
    if kind == "VirtualAppliance":
        if IPv4Address(route.next_hop_ip) == reply.dst:
            return  # the reply is for the appliance itself: delivered, not forwarded
        nic, _ = _holder_of(net, view, IPv4Address(route.next_hop_ip))
        if nic is None or not nic.enable_ip_forwarding or hops >= MAX_APPLIANCE_HOPS:
            t.steps[-1].dropped = True
            raise _Done("ReturnPathDropped")
        _return_route(net, net.subnet_view(nic.subnet), reply, t, hops + 1)
