"""The web app's sandbox: its interfaces and kernel routes, before and after VNet integration.

Before integration the container has only ``eth0`` (172.16.2.x/24, default via 172.16.2.1).
Integration renumbers ``eth0`` to 169.254.129.x/24 (default via 169.254.129.1), and mounts a
virtual interface named ``vnet`` plus 9 letters or digits (the note's ``vnet00sfpui6f``) with
169.254.254.x/24 and MTU 1458 (hence the SYN's mss 1418). Routes via 169.254.254.1 send each
VNet range, each connected peer's range, 10/8, 172.16/12 and 192.168/16 into the VNet, and the
prefixes of the integration subnet's service endpoints ("only private traffic (RFC1918) and service
endpoints configured on the integration subnet is sent into the virtual network"); with Route All
the default route moves to the vnet interface too. The platform SNATs what leaves
through it to the instance's integration-subnet address (WEBSITE_PRIVATE_IP).
https://learn.microsoft.com/azure/app-service/overview-vnet-integration#routes
The renumbering, the names and the MTU are not documented: they are what the note observed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network

from ..model import Topology, WebApp
from .addressing import integration_addresses, public_outbound_addresses
from .paas import service_endpoint_prefixes
from .routing import RESERVED_NONE, connected_peers

VNET_MTU = 1458
RFC1918 = RESERVED_NONE[:3]
ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"


@dataclass(frozen=True)
class SandboxInterface:
    name: str
    address: str       # a.b.c.d/len
    mtu: int = 1500

    @property
    def ip(self) -> IPv4Address:
        return IPv4Address(self.address.split("/")[0])


@dataclass(frozen=True)
class KernelRoute:
    destination: str   # a.b.c.d/len
    gateway: str | None
    iface: str

    @property
    def network(self) -> IPv4Network:
        return IPv4Network(self.destination)

    @property
    def flags(self) -> str:
        return "UG" if self.gateway else "U"


@dataclass
class Sandbox:
    app: str
    instance: int
    route_all: bool
    eth0: SandboxInterface
    vnet: SandboxInterface | None       # the interface integration mounts (None before integration)
    routes: list[KernelRoute]
    integration_ip: IPv4Address | None
    integration_subnet: str | None      # VNET/SUBNET
    outbound_ip: IPv4Address            # the app's public outbound address

    @property
    def integrated(self) -> bool:
        return self.vnet is not None

    @property
    def interfaces(self) -> list[SandboxInterface]:
        return [self.eth0] + ([self.vnet] if self.vnet else [])

    @property
    def vnet_iface(self) -> str | None:
        return self.vnet.name if self.vnet else None

    def interface(self, name: str) -> SandboxInterface:
        return next(i for i in self.interfaces if i.name == name)

    def __post_init__(self):
        nets = [(r.network, r) for r in self.routes]
        self._lpm = [(int(n.network_address), int(n.netmask), r)
                     for n, r in sorted(nets, key=lambda x: -x[0].prefixlen)]

    def lookup(self, ip: IPv4Address) -> KernelRoute | None:
        """The kernel's longest-prefix match over the main table."""
        value = int(ip)
        for net, mask, route in self._lpm:  # a loop, not next(genexpr): the matrix asks this for every class
            if value & mask == net:
                return route
        return None

    def route_n(self) -> str:
        """The table exactly as ``route -n`` (net-tools) prints it."""
        lines = ["Kernel IP routing table",
                 "Destination     Gateway         Genmask         Flags Metric Ref    Use Iface"]
        for r in sorted(self.routes, key=lambda r: (int(r.network.network_address), -r.network.prefixlen)):
            net = r.network
            lines.append(f"{str(net.network_address):<15} {r.gateway or '0.0.0.0':<15} {str(net.netmask):<15} "
                         f"{r.flags:<5} {0:<6} {0:<3} {0:>6} {r.iface}")
        return "\n".join(lines) + "\n"


def vnet_interface_name(app_id: str) -> str:
    """``vnet`` + 9 lowercase letters or digits, stable per app (IFNAMSIZ allows 15)."""
    digest = int(hashlib.sha256(app_id.lower().encode()).hexdigest(), 16)
    chars = []
    for _ in range(9):
        digest, rem = divmod(digest, len(ALPHABET))
        chars.append(ALPHABET[rem])
    return "vnet" + "".join(chars)


def sandbox(topo: Topology, app: WebApp, instance: int = 0,
            addresses: dict | None = None, outbound: dict | None = None) -> Sandbox:
    addresses = addresses if addresses is not None else integration_addresses(topo)
    outbound = outbound if outbound is not None else public_outbound_addresses(topo)
    public_ip = outbound[("web_apps", app.name.lower())]
    found = topo.subnet(app.vnet_integration) if app.vnet_integration else None
    if not found:
        eth0 = SandboxInterface("eth0", "172.16.2.2/24")
        routes = [KernelRoute("0.0.0.0/0", "172.16.2.1", "eth0"), KernelRoute("172.16.2.0/24", None, "eth0")]
        return Sandbox(app.name, instance, False, eth0, None, routes, None, None, public_ip)
    vnet, _ = found
    ref = app.vnet_integration.lower()
    ips = addresses.get((app.plan.lower(), ref), [])
    integration_ip = ips[instance] if instance < len(ips) else None
    vname = vnet_interface_name(topo.id_of("web_apps", app))
    eth0 = SandboxInterface("eth0", "169.254.129.2/24")
    viface = SandboxInterface(vname, "169.254.254.2/24", VNET_MTU)
    default_if, default_gw = (vname, "169.254.254.1") if app.route_all else ("eth0", "169.254.129.1")
    routes = [KernelRoute("0.0.0.0/0", default_gw, default_if),
              KernelRoute("169.254.129.0/24", None, "eth0"), KernelRoute("169.254.254.0/24", None, vname)]
    into_vnet = list(vnet.ipv4_space)
    into_vnet += [p for remote, _ in connected_peers(topo, vnet) for p in remote.ipv4_space]
    into_vnet += service_endpoint_prefixes(topo, vnet, found[1])
    seen = set()
    for prefix in into_vnet + list(RFC1918):
        if prefix not in seen:
            seen.add(prefix)
            routes.append(KernelRoute(prefix, "169.254.254.1", vname))
    return Sandbox(app.name, instance, app.route_all, eth0, viface, routes, integration_ip,
                   f"{vnet.name}/{found[1].name}", public_ip)
