"""Outbound to the internet: which public address a flow leaves with (what the internet and a PaaS
firewall see as its source), and the lab's public IP addresses and prefixes.

Azure's precedence for a VM's new connections: a NAT gateway on its subnet, then an instance-level
public IP on its NIC, then default outbound access (an implicit address, one per VNet in the lab),
which a private subnet (``default_outbound_access: false``) does not have: such a VM has no internet
path. A user route (0.0.0.0/0 to an appliance) comes first: the appliance's own egress decides.
https://learn.microsoft.com/azure/nat-gateway/nat-overview#outbound-connectivity
https://learn.microsoft.com/azure/virtual-network/ip-services/default-outbound-access

An integrated web app leaves with its plan's outbound addresses, or with the NAT gateway of its
integration subnet only when Route All sends its internet traffic into the VNet; delegated subnets
ignore ``default_outbound_access`` (observed, not documented).
https://learn.microsoft.com/azure/app-service/networking/nat-gateway-integration
Service endpoint traffic never takes the NAT gateway: its route is more specific (engine.trace).
"""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ..model import AzureError, Topology
from ..model.errors import InvalidResourceReference
from .addressing import LAB_PUBLIC_NET

PUBLIC_IP_NET, PUBLIC_PREFIX_NET = tuple(LAB_PUBLIC_NET.subnets(new_prefix=17))


@dataclass(frozen=True)
class Egress:
    """How a flow leaves to the internet: its public source, or None (no internet path)."""

    address: IPv4Address | None
    method: str                 # NatGateway | PublicIp | DefaultOutbound | AppOutbound | None
    resource: str | None = None  # the NAT gateway or public IP's name


# -- allocation ---------------------------------------------------------------------------------
def allocate_public_addresses(new: Topology, old: Topology | None) -> None:
    """A public IP or prefix without an address keeps the one it had (a static address stays), else
    takes the lowest free one of the lab's public range (README "Public addresses of the lab")."""
    before = {p.name.lower(): p for p in (old.public_ip_addresses if old else [])}
    for pip in new.public_ip_addresses:
        if pip.ip_address is None and pip.name.lower() in before:
            pip.ip_address = before[pip.name.lower()].ip_address
    taken = {IPv4Address(p.ip_address) for p in new.public_ip_addresses if p.ip_address}
    free = (ip for ip in PUBLIC_IP_NET.hosts() if ip not in taken)
    for pip in new.public_ip_addresses:
        if pip.ip_address is None:
            found = next(free, None)
            pip.ip_address = str(found) if found else None
    before_prefixes = {p.name.lower(): p for p in (old.public_ip_prefixes if old else [])}
    for pfx in new.public_ip_prefixes:
        kept = before_prefixes.get(pfx.name.lower())
        if pfx.ip_prefix is None and kept is not None and kept.prefix_length == pfx.prefix_length:
            pfx.ip_prefix = kept.ip_prefix
    used = [IPv4Network(p.ip_prefix) for p in new.public_ip_prefixes if p.ip_prefix]
    for pfx in new.public_ip_prefixes:
        if pfx.ip_prefix is None:
            block = next((b for b in PUBLIC_PREFIX_NET.subnets(new_prefix=pfx.prefix_length)
                          if not any(b.overlaps(u) for u in used)), None)
            if block is not None:
                pfx.ip_prefix = str(block)
                used.append(block)


def requested_public_address(topo: Topology, text: str | None) -> str | None:
    """The address a new public IP's body names (``ipAddress``) when the lab's public range holds it and
    no other public IP has it: the lab's own export imports back with its addresses; another (an
    address Azure gave, one in use) is allocated anew, as Azure ignores it."""
    try:
        ip = IPv4Address(text or "")
    except ValueError:
        return None
    taken = {p.ip_address for p in topo.public_ip_addresses}
    return str(ip) if ip in PUBLIC_IP_NET and str(ip) not in taken else None


def requested_public_prefix(topo: Topology, text: str | None, length: int) -> str | None:
    """A new public IP prefix's ``ipPrefix``, on the same terms (its length, the lab's prefix range, free)."""
    try:
        net = IPv4Network(text or "")
    except ValueError:
        return None
    free = not any(net.overlaps(IPv4Network(p.ip_prefix)) for p in topo.public_ip_prefixes if p.ip_prefix)
    return str(net) if net.prefixlen == length and net.subnet_of(PUBLIC_PREFIX_NET) and free else None


# -- a NAT gateway's addresses ------------------------------------------------------------------
def nat_gateway_addresses(topo: Topology, nat) -> list[IPv4Address]:
    """Every address of a NAT gateway: its public IPs, then each prefix whole (a prefix is used whole)."""
    out = []
    for name in nat.public_ip_addresses:
        pip = topo.find("public_ip_addresses", name)
        if pip is not None and pip.ip_address:
            out.append(IPv4Address(pip.ip_address))
    for name in nat.public_ip_prefixes:
        pfx = topo.find("public_ip_prefixes", name)
        if pfx is not None and pfx.ip_prefix:
            out.extend(IPv4Network(pfx.ip_prefix))
    return out


def nat_gateway_size(topo: Topology, nat) -> int:
    """How many addresses a NAT gateway holds: its public IPs and 2^(32-length) per prefix."""
    sizes = [2 ** (32 - p.prefix_length) for p in map(lambda n: topo.find("public_ip_prefixes", n),
                                                      nat.public_ip_prefixes) if p is not None]
    return len(nat.public_ip_addresses) + sum(sizes)


def subnet_nat_gateway(topo: Topology, subnet) -> Egress | None:
    """The subnet's NAT gateway egress (its first address: the lab picks it, Azure any of them)."""
    nat = topo.find("nat_gateways", subnet.nat_gateway) if subnet.nat_gateway else None
    addresses = nat_gateway_addresses(topo, nat) if nat is not None else []
    return Egress(addresses[0], "NatGateway", nat.name) if addresses else None


# -- who holds a public address (inbound from the internet) -----------------------------------------
@dataclass(frozen=True)
class PublicIpHolder:
    """The resource a public address of the lab belongs to, as the internet reaches it: a NIC's IP
    configuration (an instance-level public IP), a NAT gateway (its public IPs and prefixes) or a VPN
    gateway. ``public_ip``: the public IP or prefix resource holding the address."""

    kind: str                   # network_interfaces | nat_gateways | virtual_network_gateways
    resource: object
    public_ip: str
    public_ip_kind: str = "public_ip_addresses"   # or public_ip_prefixes

    def private_address(self) -> IPv4Address | None:
        """Where Azure delivers what the internet sends to an instance-level public IP: the private
        address of the IP configuration holding it (the NIC's primary one in the lab). None for a NAT
        gateway (outbound only) or a VPN gateway.
        https://learn.microsoft.com/azure/virtual-network/ip-services/public-ip-addresses"""
        if self.kind != "network_interfaces" or not self.resource.private_ip_address:
            return None
        return IPv4Address(self.resource.private_ip_address)


def public_ip_holders(topo: Topology) -> dict[int, PublicIpHolder]:
    """Every public address of the lab a resource uses (as int) -> its holder."""
    out: dict[int, PublicIpHolder] = {}

    def add(name: str | None, kind: str, resource) -> None:
        pip = topo.find("public_ip_addresses", name) if name else None
        if pip is not None and pip.ip_address:
            out.setdefault(int(IPv4Address(pip.ip_address)), PublicIpHolder(kind, resource, pip.name))
    for nic in topo.network_interfaces:
        if nic.private_ip_address:
            add(nic.public_ip_address, "network_interfaces", nic)
    for nat in topo.nat_gateways:
        for name in nat.public_ip_addresses:
            add(name, "nat_gateways", nat)
        for name in nat.public_ip_prefixes:
            pfx = topo.find("public_ip_prefixes", name)
            for ip in IPv4Network(pfx.ip_prefix) if pfx is not None and pfx.ip_prefix else []:
                out.setdefault(int(ip), PublicIpHolder("nat_gateways", nat, pfx.name, "public_ip_prefixes"))
    for gateway in topo.virtual_network_gateways:
        add(gateway.public_ip_address, "virtual_network_gateways", gateway)
    return out


# -- the decision -------------------------------------------------------------------------------
def nic_egress(topo: Topology, nic, subnet, default_outbound: IPv4Address | None) -> Egress:
    """A NIC's internet egress from its subnet, by Azure's precedence."""
    nat = subnet_nat_gateway(topo, subnet)
    if nat is not None:
        return nat
    pip = topo.find("public_ip_addresses", nic.public_ip_address) if nic.public_ip_address else None
    if pip is not None and pip.ip_address:
        return Egress(IPv4Address(pip.ip_address), "PublicIp", pip.name)
    if subnet.default_outbound_access is False or default_outbound is None:
        return Egress(None, "None")
    return Egress(default_outbound, "DefaultOutbound")


def app_egress(topo: Topology, subnet, through_vnet: bool, plan_outbound: IPv4Address) -> Egress:
    """An app's internet egress: its integration subnet's NAT gateway when its internet traffic goes
    through the VNet (Route All), else the plan's outbound address."""
    nat = subnet_nat_gateway(topo, subnet) if through_vnet and subnet is not None else None
    return nat or Egress(plan_outbound, "AppOutbound")


def site_outbound_addresses(topo: Topology, app) -> tuple[list[str], list[str]]:
    """A site's ``outboundIpAddresses`` and ``possibleOutboundIpAddresses``: its plan's outbound
    address (the lab gives each app one; Azure lists the scale unit's). A NAT gateway never shows here,
    as in Azure: the site's properties do not know the integration subnet's egress."""
    from .addressing import public_outbound_addresses
    ip = public_outbound_addresses(topo).get(("web_apps", app.name.lower()))
    current = [str(ip)] if ip else []
    return current, list(current)


def egresses(topo: Topology, default: dict[tuple[str, str], IPv4Address]) -> dict[tuple[str, str], Egress]:
    """("network_interfaces"|"web_apps", name) -> how its internet traffic leaves from its own subnet
    (what the emulation SNATs to, or drops when there is no address): ``default`` holds the default
    outbound and plan addresses, a NAT gateway or public IP overrides them, a private subnet has none."""
    out: dict[tuple[str, str], Egress] = {}
    for nic in topo.network_interfaces:
        found = topo.subnet(nic.subnet)
        key = ("network_interfaces", nic.name.lower())
        if found is not None and key in default:
            out[key] = nic_egress(topo, nic, found[1], default[key])
    for app in topo.web_apps:
        key = ("web_apps", app.name.lower())
        found = topo.subnet(app.vnet_integration) if app.vnet_integration else None
        if key in default:
            out[key] = app_egress(topo, found[1] if found else None, app.route_all, default[key])
    return out


def egress_addresses(egress: dict[tuple[str, str], Egress], default: dict[tuple[str, str], IPv4Address]
                     ) -> dict[tuple[str, str], IPv4Address]:
    """The address of each of :func:`egresses`; a VM of a private subnet keeps its default address here
    (the trace refuses its flow first: NoOutboundAccess; the emulation drops it)."""
    return {**default, **{k: e.address or default[k] for k, e in egress.items()}}


# -- validation ---------------------------------------------------------------------------------
MAX_NAT_ADDRESSES = 16  # https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource#nat-gateway-configurations


def check_outbound(topo: Topology) -> None:
    """Refuse what Azure refuses of public IPs, prefixes and NAT gateways (codes marked vnetlab's are
    chosen by vnetlab where Azure's text is not documented)."""
    _check_public_ips(topo)
    users: dict[str, str] = {}
    for nat in topo.nat_gateways:
        _check_nat_gateway(topo, nat, users)
    for nic in topo.network_interfaces:
        if nic.public_ip_address:
            pip = _public_ip(topo, nic.public_ip_address, f"network interface {nic.name}")
            _claim(users, pip, f"network interface {nic.name}")
    _check_subnets(topo)


def _check_public_ips(topo: Topology) -> None:
    seen: dict[IPv4Address, str] = {}
    for pip in topo.public_ip_addresses:
        if pip.ip_address is None:
            raise AzureError("The lab has no public address left for public IP address "
                             f"{pip.name} ({PUBLIC_IP_NET}).", "PublicIpAddressesExhausted")  # vnetlab's code
        ip = IPv4Address(pip.ip_address)
        if ip not in PUBLIC_IP_NET:
            raise AzureError(f"Public IP address {pip.name}: {ip} is outside the lab's public range "
                             f"{PUBLIC_IP_NET} (README, Public addresses of the lab).", "InvalidPublicIpAddress")
        if ip in seen:
            raise AzureError(f"Public IP addresses {seen[ip]} and {pip.name} have the same address {ip}.",
                             "PublicIpAddressInUse")
        seen[ip] = pip.name
    for pfx in topo.public_ip_prefixes:
        if pfx.ip_prefix is None:
            raise AzureError(f"The lab has no /{pfx.prefix_length} left for public IP prefix {pfx.name} "
                             f"({PUBLIC_PREFIX_NET}).", "PublicIpAddressesExhausted")


def _public_ip(topo: Topology, name: str, by: str):
    pip = topo.find("public_ip_addresses", name)
    if pip is None:
        raise InvalidResourceReference(f"Resource publicIPAddresses '{name}' referenced by resource {by} "
                                       "was not found.")
    return pip


def _claim(users: dict[str, str], pip, user: str) -> None:
    """A public IP serves one resource: a NIC's configuration or a NAT gateway."""
    other = users.setdefault(pip.name.lower(), user)
    if other != user:
        raise AzureError(f"Public IP address {pip.name} is already used by {other}: it cannot be used by {user} "
                         "too.", "PublicIPAddressInUse")


def _check_nat_gateway(topo: Topology, nat, users: dict[str, str]) -> None:
    by = f"NAT gateway {nat.name}"
    for name in nat.public_ip_addresses:
        pip = _public_ip(topo, name, by)
        if pip.sku != "Standard":
            # https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource#nat-gateway-configurations
            raise AzureError(f"{by} cannot use public IP address {pip.name}: its SKU is Basic, and a NAT gateway "
                             "takes Standard public IP addresses only.", "NatGatewayCannotUseBasicPublicIp")
        _claim(users, pip, by)
    for name in nat.public_ip_prefixes:
        if topo.find("public_ip_prefixes", name) is None:
            raise InvalidResourceReference(f"Resource publicIPPrefixes '{name}' referenced by resource {by} "
                                           "was not found.")
    size = nat_gateway_size(topo, nat)
    if size > MAX_NAT_ADDRESSES:
        raise AzureError(f"{by} has {size} public IP addresses (its public IPs and prefixes): a NAT gateway takes "
                         f"at most {MAX_NAT_ADDRESSES}.", "NatGatewayTooManyPublicIpAddresses")  # vnetlab's code


def _check_subnets(topo: Topology) -> None:
    vnet_of_nat: dict[str, str] = {}
    for vnet in topo.virtual_networks:
        for sn in vnet.subnets:
            if not sn.nat_gateway:
                continue
            nat = topo.find("nat_gateways", sn.nat_gateway)
            if nat is None:
                raise InvalidResourceReference(f"Resource natGateways '{sn.nat_gateway}' referenced by subnet "
                                               f"{vnet.name}/{sn.name} was not found.")
            if sn.name.lower() == "gatewaysubnet":
                # https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource#nat-gateway-configurations
                raise AzureError(f"NAT gateway {nat.name} cannot be attached to subnet GatewaySubnet of virtual network "
                                 f"{vnet.name}: the gateway subnet takes no NAT gateway.",
                                 "NatGatewayCannotBeAttachedToGatewaySubnet")  # vnetlab's code
            other = vnet_of_nat.setdefault(nat.name.lower(), vnet.name)
            if other.lower() != vnet.name.lower():
                # https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource#nat-gateway-configurations
                raise AzureError(f"NAT gateway {nat.name} serves subnets of virtual network {other}: it cannot serve "
                                 f"{vnet.name} too (a NAT gateway serves one virtual network).",
                                 "NatGatewayCannotSpanVirtualNetworks")  # vnetlab's code
