"""A compiled, read-only view of a topology, built once and shared by every trace.

It indexes what a trace looks up on each hop: subnets with their effective routes and
compiled NSGs, NIC and integration addresses per VNet, internet hosts, and public outbound
addresses. Everything here is derived from the model; nothing is stored.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from ipaddress import IPv4Address

from ..model import AzureError, NetworkInterface, NetworkSecurityGroup, Topology, VirtualNetwork, WebApp
from ..model.nsg import DEFAULT_SECURITY_RULES
from ..model.errors import ResourceNotFound
from .addressing import integration_addresses, public_outbound_addresses
from .outbound import PublicIpHolder, egress_addresses, egresses, public_ip_holders
from . import paas
from .app_service import Sandbox, sandbox
from .routing import EffectiveRoute, RouteLookup, connected_peers, effective_routes
from .security import AddressSet, CompiledNsg, may_match, virtual_network_tag


# a VM that runs a DNS server listens on 53 (UDP and TCP)
DNS_SERVER_PORTS = {("Udp", 53), ("Tcp", 53)}


@dataclass
class SubnetView:
    ref: str                   # VNET/SUBNET as written in the model
    vnet: VirtualNetwork
    subnet: object
    id: str
    routes: list[EffectiveRoute]
    route_index: RouteLookup

    def route_for(self, ip) -> EffectiveRoute | None:
        """The Active effective route for ``ip`` (longest prefix match)."""
        return self.route_index.route_for(ip)


@dataclass(frozen=True)
class Endpoint:
    kind: str                  # vm | webapp | nic | internet | onprem
    name: str
    ip: IPv4Address
    subnet_ref: str | None = None
    nic: NetworkInterface | None = None
    app: WebApp | None = None


class LabView:
    """The lab compiled for questions: what the engine's functions take where they say ``net``."""

    def __init__(self, topo: Topology, flows: Iterable[tuple[str, int | None]] | None = None):
        """``flows``: ``topo`` was read for these flows only ((protocol, port), ``Lab.topology_for``):
        an NSG holds its rules only if one of them may match one of the flows, so the view answers
        for those flows and refuses to evaluate an NSG for any other."""
        self.topo = topo
        self.flows = None if flows is None else frozenset(_flow_key(protocol, port) for protocol, port in flows)
        self.integration = integration_addresses(topo)
        self.default_outbound = public_outbound_addresses(topo)
        self.egress = egresses(topo, self.default_outbound)  # NAT gateways, public IPs, private subnets
        self.outbound = egress_addresses(self.egress, self.default_outbound)
        self.endpoint_routing = paas.EndpointRouting(topo)
        self.subnets: dict[str, SubnetView] = {}
        for vnet in topo.virtual_networks:
            for sn in vnet.subnets:
                ref = f"{vnet.name}/{sn.name}"
                routes = effective_routes(topo, vnet, sn, self.endpoint_routing)
                self.subnets[ref.lower()] = SubnetView(ref, vnet, sn, topo.id_of("virtual_networks", vnet, "subnets",
                                                                                   sn.name), routes, RouteLookup(routes))
        self.nic_at: dict[tuple[str, int], NetworkInterface] = {}
        for nic in topo.network_interfaces:  # every IP configuration's address reaches the NIC
            for ip in nic.addresses:
                self.nic_at[(nic.subnet.split("/")[0].lower(), int(IPv4Address(ip)))] = nic
        self.app_at: dict[tuple[str, int], tuple[WebApp, int]] = {}
        for app in topo.web_apps:
            if app.vnet_integration:
                vnet_name = app.vnet_integration.split("/")[0].lower()
                for i, ip in enumerate(self.integration.get((app.plan.lower(), app.vnet_integration.lower()), [])):
                    self.app_at.setdefault((vnet_name, int(ip)), (app, i))
        self.internet_at = {int(IPv4Address(h.ip)): h for h in topo.internet_hosts}
        # the on-premises hosts behind local network gateways: address -> (site, host)
        self.on_premises_at = {int(IPv4Address(h.ip)): (site, h) for site in topo.on_premises_sites
                               for h in site.hosts}
        self.by_name = {kind: {r.name.lower(): r for r in getattr(topo, kind)}
                        for kind in ("virtual_machines", "network_interfaces", "web_apps")}
        self.vm_of_nic = {vm.network_interface.lower(): vm for vm in topo.virtual_machines}
        self._nsgs: dict[tuple[str, str, str], CompiledNsg] = {}
        self._nsgs_spelled: dict[tuple[str, str, str], CompiledNsg | None] = {}
        self._matching: dict[tuple[int, str, int | None], frozenset[int]] = {}  # the NSGs are the topology's: alive
        self._tags: dict[str, AddressSet] = {}
        self._sandboxes: dict[tuple[str, int], Sandbox] = {}
        self._services = {vm.network_interface.lower(): {(s.protocol, s.port) for s in vm.services} | (
            DNS_SERVER_PORTS if vm.dns_server is not None else set()) for vm in topo.virtual_machines}

    # -- lookups --------------------------------------------------------------------------
    def subnet_view(self, ref: str) -> SubnetView:
        return self.subnets[ref.lower()]

    def vnet(self, name: str) -> VirtualNetwork | None:
        return self.topo.vnet(name)

    @cached_property
    def paas(self) -> paas.PaasIndex:
        """Where the lab's PaaS resources listen (public and private endpoint addresses)."""
        return paas.PaasIndex(self.topo, self.endpoint_routing)

    @cached_property
    def public_ip_at(self) -> dict[int, PublicIpHolder]:
        """The lab's public addresses that a resource holds: a NIC's, a NAT gateway's, a VPN gateway's."""
        return public_ip_holders(self.topo)

    @cached_property
    def peers(self) -> dict[str, dict[str, tuple[VirtualNetwork, object]]]:
        """vnet -> connected remote vnet -> (remote, local peering)."""
        return {v.name.lower(): {r.name.lower(): (r, p) for r, p in connected_peers(self.topo, v)}
                for v in self.topo.virtual_networks}

    def peering_open(self, a: str, b: str) -> bool:
        """Traffic may cross the connected peering a <-> b: both sides allow virtual network access."""
        _, there = self.peers[a.lower()][b.lower()]
        _, back = self.peers[b.lower()][a.lower()]
        return there.allow_virtual_network_access and back.allow_virtual_network_access

    def accepts_forwarded(self, into: str, sender: str) -> bool:
        """VNet ``into`` accepts, from its peer ``sender``, traffic that did not originate in
        ``sender`` (forwarded by an appliance): its own peering to ``sender`` must allow it.
        https://learn.microsoft.com/azure/virtual-network/virtual-network-peering-overview"""
        return self.peers[into.lower()][sender.lower()][1].allow_forwarded_traffic

    def appliance_at(self, view: SubnetView, ip: IPv4Address) -> tuple[NetworkInterface | None,
                                                                         VirtualNetwork | None]:
        """The NIC holding ``ip`` (a route's next hop) in the VNet of ``view`` or a connected
        peer, with the VNet it is in; ``(None, None)`` if no NIC holds it."""
        for vnet in [view.vnet] + [r for r, _ in self.peers[view.vnet.name.lower()].values()]:
            nic = self.nic_at.get((vnet.name.lower(), int(ip)))
            if nic is not None and any(ip in n for n in vnet.networks):
                return nic, vnet
        return None, None

    @staticmethod
    def accepts_transit(nic: NetworkInterface) -> bool:
        """A NIC receives traffic addressed to another address (it acts as a virtual appliance)
        only with IP forwarding enabled on it; Azure drops the rest.
        https://learn.microsoft.com/azure/virtual-network/virtual-network-network-interface#enable-or-disable-ip-forwarding"""
        return nic.enable_ip_forwarding

    def vnet_tag(self, vnet: VirtualNetwork) -> AddressSet:
        key = vnet.name.lower()
        if key not in self._tags:
            self._tags[key] = virtual_network_tag(self.topo, vnet)
        return self._tags[key]

    def nsg(self, name: str | None, direction: str, vnet: VirtualNetwork) -> CompiledNsg | None:
        if not name:
            return None
        spelled = (name, direction, vnet.name)  # the names as written: each walk asks twice or more
        if spelled in self._nsgs_spelled:
            return self._nsgs_spelled[spelled]
        compiled = self._nsgs_spelled[spelled] = self._compiled_nsg(name, direction, vnet)
        return compiled

    def _compiled_nsg(self, name: str, direction: str, vnet: VirtualNetwork) -> CompiledNsg | None:
        key = (name.lower(), direction, vnet.name.lower())
        compiled = self._nsgs.get(key)
        if compiled is None:
            model = self.topo.find("network_security_groups", name)
            if model is None:
                return None
            compiled = self._nsgs[key] = CompiledNsg(model, direction, self.vnet_tag(vnet),
                                                     lambda protocol, port: self.rules_matching(model, protocol, port))
        return compiled

    def rules_matching(self, nsg: NetworkSecurityGroup, protocol: str, port: int | None) -> frozenset[int]:
        """The ids of ``nsg``'s rules, its own and the default ones, that ``may_match`` a flow of
        ``protocol`` to ``port``: once per NSG and flow (a large lab's 200,000 rules are asked by the
        matrix's classes and again by the NSG compiled in each direction)."""
        key = (id(nsg), *_flow_key(protocol, port))
        found = self._matching.get(key)
        if found is None:
            if self.flows is not None and key[1:] not in self.flows:
                raise RuntimeError(f"this view of the lab holds the NSG rules for {sorted(self.flows, key=str)} "
                                   f"only, not for {key[1:]}")
            found = self._matching[key] = frozenset(
                id(rule) for rule in (*nsg.security_rules, *DEFAULT_SECURITY_RULES) if may_match(rule, protocol, port))
        return found

    def guest_forwards(self, nic: NetworkInterface) -> bool:
        """The OS of the VM holding ``nic`` forwards packets not addressed to it: the VM's
        guest_ip_forwarding, or the NIC's enable_ip_forwarding when that is unset."""
        vm = self.vm_of_nic.get(nic.name.lower())
        if vm is None or vm.guest_ip_forwarding is None:
            return nic.enable_ip_forwarding
        return vm.guest_ip_forwarding

    def services_of(self, nic: NetworkInterface) -> set[tuple[str, int]] | None:
        """(protocol, port) the NIC's VM listens on; None when no VM uses the NIC."""
        return self._services.get(nic.name.lower())

    def sandbox(self, app: WebApp, instance: int = 0) -> Sandbox:
        key = (app.name.lower(), instance)
        if key not in self._sandboxes:
            self._sandboxes[key] = sandbox(self.topo, app, instance, self.integration, self.outbound)
        return self._sandboxes[key]

    def public_ip(self, kind: str, name: str) -> IPv4Address:
        return self.outbound[(kind, name.lower())]

    # -- endpoints -------------------------------------------------------------------------
    def endpoint(self, name: str) -> Endpoint:
        """A VM, NIC, web app or internet host by name."""
        topo, low = self.topo, name.lower()
        vm = self.by_name["virtual_machines"].get(low)
        nic = self.by_name["network_interfaces"].get(vm.network_interface.lower() if vm else low)
        if nic is not None:
            if not nic.private_ip_address:
                raise AzureError(f"Network interface {nic.name} has no private IP address yet.", "InvalidState")
            return Endpoint("vm" if vm else "nic", (vm or nic).name, IPv4Address(nic.private_ip_address),
                            nic.subnet, nic=nic)
        app = self.by_name["web_apps"].get(low)
        if app is not None:
            sb = self.sandbox(app)
            return Endpoint("webapp", app.name, sb.integration_ip or sb.outbound_ip, sb.integration_subnet, app=app)
        host = next((h for h in topo.internet_hosts if h.name.lower() == name.lower()), None)
        if host is not None:
            return Endpoint("internet", host.name, IPv4Address(host.ip))
        on_premises = next((h for _, h in self.on_premises_at.values() if h.name.lower() == low), None)
        if on_premises is not None:
            return Endpoint("onprem", on_premises.name, IPv4Address(on_premises.ip))
        raise ResourceNotFound(f"No VM, network interface, web app, internet or on-premises host named '{name}' in "
                               "the lab.")

    def destination_ip(self, name_or_ip: str) -> tuple[IPv4Address, str]:
        try:
            return IPv4Address(name_or_ip), name_or_ip
        except ValueError:
            pass
        ep = self.endpoint(name_or_ip)
        if ep.kind == "webapp" and ep.subnet_ref is None:
            raise AzureError(f"Web app {ep.name} is not integrated with a VNet: it has no private address. "
                             "Its public endpoint is not modelled.", "InvalidDestination")
        return ep.ip, ep.name

    def endpoints(self) -> list[Endpoint]:
        out = []
        for vm in self.topo.virtual_machines:
            nic = self.by_name["network_interfaces"].get(vm.network_interface.lower())
            if nic and nic.private_ip_address and vm.running:  # a stopped VM opens no connection
                out.append(Endpoint("vm", vm.name, IPv4Address(nic.private_ip_address), nic.subnet, nic=nic))
        for app in self.topo.web_apps:
            if not app.running:  # a stopped app runs no code: it opens no connection
                continue
            sb = self.sandbox(app)
            out.append(Endpoint("webapp", app.name, sb.integration_ip or sb.outbound_ip, sb.integration_subnet,
                                app=app))
        return out


def integration_inbound_refused(protocol: str) -> bool:
    """VNet integration is outbound only: nothing reaches an app through its integration address.
    A new TCP connection to it is reset (the field note's curl: "Failed to connect ... refused"),
    anything else is not answered.
    https://learn.microsoft.com/azure/app-service/overview-vnet-integration"""
    return protocol == "Tcp"


def _flow_key(protocol: str, port: int | None) -> tuple[str, int | None]:
    return protocol, port if protocol != "Icmp" else None
