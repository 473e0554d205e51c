"""Site-to-site VPN: which gateway serves a VNet (its own, or a peer's by gateway transit), the
routes a gateway's connections add, the status of a connection, what an on-premises site routes
back, and Azure's refusals.

- A VNet's VPN gateway lives in its ``GatewaySubnet``; its connections' local network gateways give
  static prefixes, which every subnet of the VNet gets as routes with source and next hop
  ``VirtualNetworkGateway`` (unless the subnet's route table disables gateway route propagation).
  https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview#virtual-network-gateway
- A peered VNet uses the remote VNet's gateway when its peering sets ``use_remote_gateways`` and the
  remote's peering back sets ``allow_gateway_transit``: it gets the same routes, and the site reaches
  it through the gateway. https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-peering-gateway-transit
- BGP is out of the lab's scope: the on-premises site routes back the gateway VNet's ranges and those of
  the VNets using the gateway (what a static configuration of the device would hold).
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from ..model import AzureError, Topology, VirtualNetwork
from ..model.errors import InvalidResourceReference
from ..model.gateways import GATEWAY_SUBNET, VPN_SKUS, Connection, LocalNetworkGateway, VirtualNetworkGateway


def gateway_in(topo: Topology, vnet: VirtualNetwork) -> VirtualNetworkGateway | None:
    """The VPN gateway in ``vnet``'s GatewaySubnet."""
    low = vnet.name.lower()
    return next((g for g in topo.virtual_network_gateways if g.virtual_network.lower() == low), None)


def remote_gateway_vnet(topo: Topology, vnet: VirtualNetwork) -> VirtualNetwork | None:
    """The connected peer whose gateway ``vnet`` uses: its peering uses remote gateways, the peering
    back allows gateway transit, and the peer has a gateway."""
    from .routing import connected_peers, reverse_peering
    for remote, peering in connected_peers(topo, vnet):
        if not peering.use_remote_gateways:
            continue
        back = reverse_peering(topo, vnet, peering)
        if back is not None and back.allow_gateway_transit and gateway_in(topo, remote) is not None:
            return remote
    return None


def gateway_for(topo: Topology, vnet: VirtualNetwork) -> tuple[VirtualNetworkGateway, VirtualNetwork] | None:
    """(the gateway ``vnet``'s traffic uses, the VNet holding it): its own, or a peer's by transit."""
    own = gateway_in(topo, vnet)
    if own is not None:
        return own, vnet
    hub = remote_gateway_vnet(topo, vnet)
    return (gateway_in(topo, hub), hub) if hub is not None else None


def connections_of(topo: Topology, gateway: VirtualNetworkGateway) -> list[Connection]:
    low = gateway.name.lower()
    return [c for c in topo.connections if c.virtual_network_gateway.lower() == low]


def sites_behind(topo: Topology, lng: LocalNetworkGateway):
    low = lng.name.lower()
    return [s for s in topo.on_premises_sites if s.local_network_gateway.lower() == low]


def connection_status(topo: Topology, connection: Connection) -> str:
    """ARM ``connectionStatus``: Connected when a device of the lab answers at the local network
    gateway's address (an on-premises site behind it) with the same shared key; NotConnected otherwise.
    https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-howto-site-to-site-resource-manager-portal#VerifyConnection"""
    lng = topo.find("local_network_gateways", connection.local_network_gateway)
    if lng is None or topo.find("virtual_network_gateways", connection.virtual_network_gateway) is None:
        return "NotConnected"
    for site in sites_behind(topo, lng):
        if site.shared_key is None or site.shared_key == connection.shared_key:
            return "Connected"
    return "NotConnected"


def gateway_private_ip(topo: Topology, gateway: VirtualNetworkGateway) -> IPv4Address | None:
    """The gateway instance's address: the first one Azure gives in the GatewaySubnet (x.x.x.4)."""
    found = topo.subnet(gateway.subnet_ref)
    return IPv4Address(int(found[1].network.network_address) + 4) if found else None


def next_hop_ip(topo: Topology, gateway: VirtualNetworkGateway) -> str | None:
    """The next hop address effective routes show: the gateway's public IP (active-standby), else its
    instance address."""
    pip = topo.find("public_ip_addresses", gateway.public_ip_address) if gateway.public_ip_address else None
    if pip is not None and pip.ip_address:
        return pip.ip_address
    ip = gateway_private_ip(topo, gateway)
    return str(ip) if ip else None


def gateway_prefixes(topo: Topology, gateway: VirtualNetworkGateway) -> list[tuple[str, Connection]]:
    """Each prefix of each connection's local network gateway, with the connection."""
    out = []
    for connection in connections_of(topo, gateway):
        lng = topo.find("local_network_gateways", connection.local_network_gateway)
        out += [(p, connection) for p in (lng.address_prefixes if lng else [])]
    return out


def propagates(topo: Topology, subnet) -> bool:
    """A route table with gateway route propagation disabled keeps the gateway's routes off its subnets.
    https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview#border-gateway-protocol"""
    table = topo.find("route_tables", subnet.route_table) if subnet.route_table else None
    return table is None or not table.disable_bgp_route_propagation


def on_premises_prefixes(topo: Topology, vnet: VirtualNetwork) -> list[str]:
    """The on-premises prefixes ``vnet`` reaches through its gateway (own or by transit)."""
    found = gateway_for(topo, vnet)
    return [p for p, _ in gateway_prefixes(topo, found[0])] if found else []


def connection_to(topo: Topology, gateway: VirtualNetworkGateway, ip: IPv4Address) -> Connection | None:
    """The connection whose local network gateway holds ``ip`` (longest prefix)."""
    best = None
    for prefix, connection in gateway_prefixes(topo, gateway):
        net = IPv4Network(prefix)
        if ip in net and (best is None or net.prefixlen > best[0].prefixlen):
            best = (net, connection)
    return best[1] if best else None


def vnets_behind(topo: Topology, gateway: VirtualNetworkGateway) -> list[VirtualNetwork]:
    """The gateway's VNet and the VNets using it by transit: what the site reaches (and routes back)."""
    hub = topo.vnet(gateway.virtual_network)
    if hub is None:
        return []
    from .routing import connected_peers
    return [hub] + [r for r, _ in connected_peers(topo, hub) if remote_gateway_vnet(topo, r) is hub]


def site_routes_to(topo: Topology, site, ip: IPv4Address) -> tuple[Connection, VirtualNetworkGateway,
                                                                 VirtualNetwork] | None:
    """(connection, gateway, VNet holding ``ip``) a site's traffic to ``ip`` takes: a connection from
    the site's local network gateway to a gateway whose VNets hold ``ip``."""
    low = site.local_network_gateway.lower()
    for connection in topo.connections:
        if connection.local_network_gateway.lower() != low:
            continue
        gateway = topo.find("virtual_network_gateways", connection.virtual_network_gateway)
        for vnet in vnets_behind(topo, gateway) if gateway else []:
            if any(ip in n for n in vnet.networks):
                return connection, gateway, vnet
    return None


def site_of_host(topo: Topology, name: str):
    low = name.lower()
    for site in topo.on_premises_sites:
        for host in site.hosts:
            if host.name.lower() == low:
                return site, host
    return None


# -- validation ---------------------------------------------------------------------------------
def check_gateways(topo: Topology) -> None:
    """Refuse what Azure refuses of VPN gateways, local network gateways, connections and gateway
    transit (codes marked vnetlab's are chosen by vnetlab where Azure's text is not documented)."""
    for gateway in topo.virtual_network_gateways:
        _check_gateway(topo, gateway)
    for lng in topo.local_network_gateways:
        if not lng.address_prefixes:
            raise AzureError(f"Local network gateway {lng.name} has no address prefix: give the on-premises "
                             "address ranges (localNetworkAddressSpace).", "LocalNetworkGatewayAddressSpaceEmpty")
    for connection in topo.connections:
        _check_connection(topo, connection)
    _check_sites(topo)
    for vnet in topo.virtual_networks:
        _check_transit(topo, vnet)
    for vnet in topo.virtual_networks:
        gw_subnet = vnet.subnet(GATEWAY_SUBNET)
        if gw_subnet is not None:
            _check_gateway_subnet(topo, vnet, gw_subnet)


def _check_gateway(topo: Topology, gateway: VirtualNetworkGateway) -> None:
    gid = topo.id_of("virtual_network_gateways", gateway)
    vnet = topo.vnet(gateway.virtual_network)
    if vnet is None:
        raise InvalidResourceReference(f"Resource virtualNetworks '{gateway.virtual_network}' referenced by "
                                       f"resource {gid} was not found.")
    if vnet.subnet(GATEWAY_SUBNET) is None:
        # "If you don't have a subnet named GatewaySubnet, when you create your VPN gateway, it will fail."
        # https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-about-vpn-gateway-settings#gwsub
        raise AzureError(f"Virtual network gateway {gid} needs a subnet named GatewaySubnet in virtual network "
                         f"{topo.id_of('virtual_networks', vnet)}: create the gateway subnet first (a /27 or larger "
                         "is recommended).", "GatewaySubnetNotFound")  # vnetlab's code
    if gateway.sku not in VPN_SKUS:
        # https://learn.microsoft.com/azure/vpn-gateway/about-gateway-skus
        raise AzureError(f"Virtual network gateway {gateway.name}: SKU '{gateway.sku}' is not a VPN gateway SKU "
                         f"({', '.join(VPN_SKUS)}).", "InvalidGatewaySku")  # vnetlab's code
    others = [g.name for g in topo.virtual_network_gateways
              if g is not gateway and g.virtual_network.lower() == vnet.name.lower()]
    if others:
        # a VNet has one VPN gateway https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-vpn-faq
        raise AzureError(f"Virtual network {vnet.name} already has VPN gateway {others[0]}: a virtual network has "
                         "one VPN gateway.", "VirtualNetworkAlreadyHasVpnGateway")  # vnetlab's code
    if gateway.public_ip_address and topo.find("public_ip_addresses", gateway.public_ip_address) is None:
        raise InvalidResourceReference(f"Resource publicIPAddresses '{gateway.public_ip_address}' referenced by "
                                       f"resource {gid} was not found.")
    other = _public_ip_user(topo, gateway)
    if other:
        raise AzureError(f"Public IP address {gateway.public_ip_address} is already used by {other}: it cannot be used "
                         f"by virtual network gateway {gateway.name} too.", "PublicIPAddressInUse")


def _public_ip_user(topo: Topology, gateway: VirtualNetworkGateway) -> str | None:
    """Another resource holding the gateway's public IP (a NIC, a NAT gateway, another gateway)."""
    low = (gateway.public_ip_address or "").lower()
    if not low:
        return None
    users = [f"network interface {n.name}" for n in topo.network_interfaces if (n.public_ip_address or "").lower() == low]
    users += [f"NAT gateway {n.name}" for n in topo.nat_gateways if low in (p.lower() for p in n.public_ip_addresses)]
    users += [f"virtual network gateway {g.name}" for g in topo.virtual_network_gateways
              if g is not gateway and (g.public_ip_address or "").lower() == low]
    return users[0] if users else None


def _check_gateway_subnet(topo: Topology, vnet: VirtualNetwork, subnet) -> None:
    """"Never deploy anything else in the gateway subnet"; an NSG on it is refused when the gateway is
    created (Azure's text). https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-about-vpn-gateway-settings#gwsub"""
    nics = topo.nics_in(vnet.name, subnet.name)
    if nics:
        raise AzureError(f"Network interface {nics[0].name} cannot use subnet GatewaySubnet of virtual network "
                         f"{vnet.name}: the gateway subnet is reserved for the virtual network gateway.",
                         "GatewaySubnetCannotHaveNetworkInterfaces")  # vnetlab's code
    if subnet.network_security_group and gateway_in(topo, vnet) is not None:
        raise AzureError(f"The operation failed because the network security group {subnet.network_security_group} "
                         "can not be associated to the GatewaySubnet. Please remove the network security group "
                         "associated to the GatewaySubnet. No changes have occurred on the gateway at this time.",
                         "NetworkSecurityGroupNotCompliantForGatewaySubnet")  # vnetlab's code, Azure's text


def _check_connection(topo: Topology, connection: Connection) -> None:
    cid = topo.id_of("connections", connection)
    if topo.find("virtual_network_gateways", connection.virtual_network_gateway) is None:
        raise InvalidResourceReference(f"Resource virtualNetworkGateways '{connection.virtual_network_gateway}' "
                                       f"referenced by resource {cid} was not found.")
    if topo.find("local_network_gateways", connection.local_network_gateway) is None:
        raise InvalidResourceReference(f"Resource localNetworkGateways '{connection.local_network_gateway}' "
                                       f"referenced by resource {cid} was not found.")


def _check_sites(topo: Topology) -> None:
    names = {n.lower() for kind in ("virtual_machines", "network_interfaces", "web_apps")
             for n in (r.name for r in getattr(topo, kind))} | {h.name.lower() for h in topo.internet_hosts}
    seen_sites: set[str] = set()
    for site in topo.on_premises_sites:
        if site.name.lower() in seen_sites:
            raise AzureError(f"Two on-premises sites are named '{site.name}'.", "DuplicateResourceName")
        seen_sites.add(site.name.lower())
        # a site whose local network gateway is gone stays, unconnected (deleting the LNG is Azure's business)
        lng = topo.find("local_network_gateways", site.local_network_gateway)
        for host in site.hosts:
            ip = IPv4Address(host.ip)
            if lng is not None and not any(ip in n for n in lng.networks):
                raise AzureError(f"On-premises host {host.name} ({ip}) is outside the address prefixes of local "
                                 f"network gateway {lng.name} ({', '.join(lng.address_prefixes)}).",
                                 "OnPremisesHostOutsideSite")  # vnetlab's code
            if topo.vnet_of_ip(ip) is not None:
                raise AzureError(f"On-premises host {host.name} ({ip}) is inside the address space of virtual "
                                 f"network {topo.vnet_of_ip(ip).name}: the lab's sites use their own ranges.",
                                 "OnPremisesHostInVirtualNetwork")  # vnetlab's code
            if host.name.lower() in names:
                raise AzureError(f"On-premises host {host.name}: another host or resource of the lab has that "
                                 "name.", "DuplicateResourceName")
            names.add(host.name.lower())


def _check_transit(topo: Topology, vnet: VirtualNetwork) -> None:
    """``use_remote_gateways`` needs a gateway in the remote VNet and none in this one, and one peering
    at most sets it. https://learn.microsoft.com/azure/virtual-network/virtual-network-manage-peering#requirements-and-constraints"""
    using = [p for p in vnet.peerings if p.use_remote_gateways]
    for peering in using:
        remote = topo.vnet(peering.remote_virtual_network)
        if remote is None:
            continue  # Disconnected: kept as it is
        pid = topo.id_of("virtual_networks", vnet, "virtualNetworkPeerings", peering.name)
        if gateway_in(topo, remote) is None:
            # Azure's text (observed, see azure-paas-dns.md section 6)
            raise AzureError(f"Peering {pid} cannot have UseRemoteGateway flag set to true because remote virtual "
                             f"network {topo.id_of('virtual_networks', remote)} referenced by the peering does not "
                             "have any gateways.", "RemoteVnetHasNoGateways")
        if gateway_in(topo, vnet) is not None:
            # "You can't use remote gateways if you already have a gateway configured in your virtual network."
            raise AzureError(f"Peering {pid} cannot have UseRemoteGateway flag set to true because virtual network "
                             f"{topo.id_of('virtual_networks', vnet)} already has a gateway.",
                             "VnetHasGatewayCannotUseRemoteGateways")  # vnetlab's code
    if len(using) > 1:
        # "Only one peering for a virtual network can have this setting enabled."
        raise AzureError(f"Virtual network {vnet.name} has peerings {using[0].name} and {using[1].name} with "
                         "UseRemoteGateways: only one peering of a virtual network can use remote gateways.",
                         "OnlyOnePeeringCanUseRemoteGateways")  # vnetlab's code
