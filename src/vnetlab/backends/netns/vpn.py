"""Site-to-site VPN in the kernel, from the engine's answers (engine.gateways).

- Each VPN gateway is a namespace (``gw``) on a routed port ``g<hash>`` of its VNet's fabric, in the
  ``GatewaySubnet``: what comes in by that port follows the GatewaySubnet's table (its UDRs apply),
  as the engine's trace from on-premises does.
- Each on-premises site is a router namespace (``site``) behind each gateway whose connection to the
  site's local network gateway is Connected, over a veth standing in for the IPsec tunnel; each of its
  hosts is a namespace (``onprem``) behind the site router, with its responder.
- The gateway routes the local network gateways' prefixes into the tunnel and the ranges of the VNets
  behind it (its own, those using it by transit) to the fabric; the site routes those ranges back.
- Fabrics: a ``VirtualNetworkGateway`` route goes to the gateway's port, or over the peering to the hub
  whose gateway the VNet uses; the hub's delivery table sends the gateway's prefixes to its port (what
  a spoke sends over the peering). No gateway, or a connection that is not Connected: blackholes.
"""

from __future__ import annotations

from ...engine import gateways as gw_engine
from ...model import VirtualNetwork
from .layout import DELIVER_TABLE, LINK_GW, Layout, Port, port_name
from .state import Address, Neighbour
from . import processes


def gateway_port(gateway_name: str) -> str:
    return port_name("g", gateway_name)


def build(lay: Layout) -> None:
    """The gateways' and sites' namespaces and links (before the fabrics' routes)."""
    topo = lay.topo
    gw_ns: dict[str, str] = {}
    for gw in sorted(topo.virtual_network_gateways, key=lambda g: g.name.lower()):
        vnet = topo.vnet(gw.virtual_network)
        if vnet is None or vnet.name.lower() not in lay.fabric_of:
            continue
        gw_ns[gw.name.lower()] = _gateway(lay, gw, vnet)
    for site in sorted(topo.on_premises_sites, key=lambda s: s.name.lower()):
        _site(lay, site, gw_ns)


def _gateway(lay: Layout, gw, vnet: VirtualNetwork) -> str:
    fab = lay.fabric_of[vnet.name.lower()]
    ns = lay.add_ns(lay.nsname("gw", gw.name), forward=True, infra=True)
    lay.names.endpoints[f"{gw.name.lower()}:gateway"] = ns
    port, ip = gateway_port(gw.name), str(gw_engine.gateway_private_ip(lay.topo, gw))
    g_m, f_m = lay.veth(ns, "eth0", fab, port, alias=lay.topo.id_of("virtual_network_gateways", gw))
    lay.addresses.append(Address(ns=ns, dev="eth0", cidr=f"{ip}/32"))
    lay.neigh.append(Neighbour(ns=ns, dev="eth0", ip=LINK_GW, mac=f_m))
    lay.neigh.append(Neighbour(ns=fab, dev=port, ip=ip, mac=g_m))
    lay.neigh.append(Neighbour(ns=fab, dev=port, ip=LINK_GW, mac=g_m))
    lay.ports[f"{port}@{fab}"] = Port(fab, port, ip, gw.subnet_ref, vnet)
    lay.route(ns, "default", type="blackhole")  # what no local network gateway holds ends here (GatewayNoRoute)
    for behind in gw_engine.vnets_behind(lay.topo, gw):
        for prefix in behind.ipv4_space:
            lay.route(ns, prefix, via=LINK_GW, dev="eth0", onlink=True)
    return ns


def _site(lay: Layout, site, gw_ns: dict[str, str]) -> None:
    topo = lay.topo
    sns = lay.add_ns(lay.nsname("site", site.name), forward=True, infra=True)
    lay.names.endpoints[f"{site.name.lower()}:site"] = sns
    lay.route(sns, "default", type="blackhole")
    for host in sorted(site.hosts, key=lambda h: h.name.lower()):
        _host(lay, sns, site, host)
    lng = topo.find("local_network_gateways", site.local_network_gateway)
    for conn in topo.connections if lng is not None else []:
        if conn.local_network_gateway.lower() != lng.name.lower():
            continue
        gw = topo.find("virtual_network_gateways", conn.virtual_network_gateway)
        if gw is None or gw.name.lower() not in gw_ns or gw_engine.connection_status(topo, conn) != "Connected":
            continue  # no tunnel: the engine drops at the gateway (ConnectionNotConnected)
        gns, tdev = gw_ns[gw.name.lower()], port_name("t", conn.name)
        lay.link(gns, tdev, sns, tdev, alias=f"IPsec connection {conn.name}")
        for prefix in lng.address_prefixes:
            lay.route(gns, prefix, via=LINK_GW, dev=tdev, onlink=True)
        for behind in gw_engine.vnets_behind(topo, gw):
            for prefix in behind.ipv4_space:
                lay.route(sns, prefix, via=LINK_GW, dev=tdev, onlink=True)


def _host(lay: Layout, sns: str, site, host) -> None:
    ns = lay.add_ns(lay.nsname("onprem", host.name))
    lay.names.endpoints[host.name.lower()] = ns
    dev = port_name("h", site.name, host.name)
    h_m, s_m = lay.veth(ns, "eth0", sns, dev, alias=f"on-premises host {host.name} of {site.name}")
    lay.addresses.append(Address(ns=ns, dev="eth0", cidr=f"{host.ip}/32"))
    lay.route(ns, "default", via=LINK_GW, dev="eth0", onlink=True)
    lay.neigh.append(Neighbour(ns=ns, dev="eth0", ip=LINK_GW, mac=s_m))
    lay.neigh.append(Neighbour(ns=sns, dev=dev, ip=host.ip, mac=h_m))
    lay.route(sns, f"{host.ip}/32", dev=dev)
    tcp = [s.port for s in host.services if s.protocol == "Tcp"]
    udp = [s.port for s in host.services if s.protocol == "Udp"]
    if tcp or udp:
        lay.procs.append(processes.responder(ns, host.name, tcp, udp))


def gateway_route(lay: Layout, fab: str, vnet: VirtualNetwork, prefix: str, table: int) -> None:
    """A subnet's ``VirtualNetworkGateway`` route: to its VNet's gateway port, or over the peering to the
    hub whose gateway it uses (the engine's gateway_for); a blackhole without one (NoGateway)."""
    found = gw_engine.gateway_for(lay.topo, vnet)
    if found is None:
        lay.route(fab, prefix, table=table, type="blackhole")
        return
    gw, hub = found
    if hub.name.lower() == vnet.name.lower():
        lay.route(fab, prefix, via=LINK_GW, dev=gateway_port(gw.name), table=table, onlink=True)
    elif lay.net.peering_open(vnet.name, hub.name):
        lay.route(fab, prefix, via=LINK_GW, dev=port_name("p", hub.name), table=table, onlink=True)
    else:
        lay.route(fab, prefix, table=table, type="blackhole")


def hub_delivery(lay: Layout, vnet: VirtualNetwork) -> None:
    """What a spoke sends over the peering to the hub's gateway: the hub's delivery table sends the
    gateway's prefixes to its port."""
    gw = gw_engine.gateway_in(lay.topo, vnet)
    fab = lay.fabric_of.get(vnet.name.lower())
    if gw is None or fab is None:
        return
    for prefix, _ in gw_engine.gateway_prefixes(lay.topo, gw):
        lay.route(fab, prefix, via=LINK_GW, dev=gateway_port(gw.name), table=DELIVER_TABLE, onlink=True)
