"""Routing: the fabrics' tables and policy rules, from the engine's effective routes.

Each port of a fabric is policy-routed (``ip rule iif <port> lookup <table of its subnet>``)
to its subnet's table, which holds that subnet's Active effective routes as the engine
computes them (``SubnetView.routes``/``.route_for``): ``None`` is a blackhole; ``VirtualAppliance``
goes via the NVA's port, or to an NVA of a peered VNet over an *appliance link*;
``VNetPeering`` over the peering link; ``Internet`` to the internet namespace.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from ...model import VirtualNetwork
from .layout import DELIVER_TABLE, LINK_GW, ApplianceLink, Layout, port_name
from .state import Neighbour, Rule
from . import vpn

NVA_TABLE_BASE = 4000             # fabric: "to this NVA" (appliance links, internet replies of its flows)
NVA_MARK_BASE = 0x100             # fabric: ct mark of a flow an NVA sent to the internet
PRIO_ALINK, PRIO_NVA_RETURN, PRIO_PORT, PRIO_APP_RST = 300, 500, 1000, 20000


def nva_table(lay: Layout, fab: str, port: str, ip: str) -> int:
    """The fabric's table sending everything to the NVA behind ``port`` (one per NVA)."""
    tables = lay.nva_tables.setdefault(fab, {})
    if port not in tables:
        tables[port] = NVA_TABLE_BASE + len(tables)
        lay.route(fab, "default", via=ip, dev=port, table=tables[port], onlink=True)
    return tables[port]


def nva_return(lay: Layout, fab: str, nvas) -> None:
    """The internet's replies to what the NVA behind each port sent out (marked ``NVA_MARK_BASE
    + i`` by the fabric's nft) go back through that NVA."""
    for i, p in enumerate(nvas):
        lay.rules.append(Rule(ns=fab, priority=PRIO_NVA_RETURN + i, iif="inet", fwmark=NVA_MARK_BASE + i,
                              table=nva_table(lay, fab, p.name, p.ip)))


def appliance_links(lay: Layout) -> None:
    """A route whose next hop is an NVA in a peered VNet (the engine's ``appliance_at``) goes
    over an *appliance link*: a veth between the two fabrics dedicated to that NVA, whose far
    end is policy-routed to the NVA's port. (A peering link cannot carry it: the packet's
    destination is not the NVA, and the far fabric would deliver it by destination.) Created
    when the engine lets the packet cross (``peering_open``) and a VM holds the NIC; otherwise
    the route stays a blackhole, as the engine drops it."""
    net = lay.net
    for _sref, view in sorted(net.subnets.items()):
        for r in view.routes:
            if r.state != "Active" or r.next_hop_type != "VirtualAppliance":
                continue
            nva, where = net.appliance_at(view, IPv4Address(r.next_hop_ip))
            src = view.vnet.name.lower()
            if nva is None or where.name.lower() == src or (src, nva.name.lower()) in lay.alinks:
                continue
            dst = where.name.lower()
            fab, rfab = lay.fabric_of[src], lay.fabric_of[dst]
            nva_port = port_name("n", nva.name)
            if f"{nva_port}@{rfab}" not in lay.ports or not net.peering_open(src, dst):
                continue  # no VM holds the NIC, or the peering refuses access
            dev, rdev = port_name("a", nva.name), port_name("a", src, nva.name)
            _, r_m = lay.veth(fab, dev, rfab, rdev, alias=f"{where.name} NVA {nva.name} for {view.vnet.name}")
            lay.neigh.append(Neighbour(ns=fab, dev=dev, ip=nva.private_ip_address, mac=r_m))
            table = nva_table(lay, rfab, nva_port, nva.private_ip_address)
            n = lay.alink_rules.setdefault(rfab, [])
            lay.rules.append(Rule(ns=rfab, priority=PRIO_ALINK + len(n), iif=rdev, table=table))
            n.append(rdev)
            lay.alinks[(src, nva.name.lower())] = ApplianceLink(dev, rdev, src, dst, fab, rfab)


def fabric_routes(lay: Layout, vnet: VirtualNetwork) -> None:
    """Delivery, the subnet tables and the port rules of one fabric."""
    net = lay.net
    fab = lay.fabric_of[vnet.name.lower()]
    ports = lay.fabric_ports(fab)
    # delivery: every host port of this VNet (for an address shared by the apps of a plan
    # instance, the port that owns it)
    receiving = [p for p in ports if p.owner]
    for p in receiving:
        for ip in p.ips:
            lay.route(fab, f"{ip}/32", dev=p.name, table=DELIVER_TABLE)
    vpn.hub_delivery(lay, vnet)
    for sref, view in sorted(net.subnets.items()):
        if view.vnet.name.lower() == vnet.name.lower():
            _subnet_table(lay, fab, vnet, view, lay.subnet_table[sref], receiving)
    for i, p in enumerate(ports):
        lay.rules.append(Rule(ns=fab, priority=PRIO_PORT + i, iif=p.name, table=lay.subnet_table[p.subnet.lower()]))
    for i, p in enumerate(p for p in ports if p.app is not None and p.owner):
        # the fabric's own resets for TCP to an integration address leave by the integration
        # subnet's routes, as the engine's return path does
        lay.rules.append(Rule(ns=fab, priority=PRIO_APP_RST + i, iif="lo", from_=f"{p.ip}/32",
                              table=lay.subnet_table[p.subnet.lower()]))


def _subnet_table(lay: Layout, fab: str, vnet: VirtualNetwork, view, table: int, receiving) -> None:
    """The subnet's Active effective routes (the engine's), in its table."""
    net = lay.net
    peers = net.peers[vnet.name.lower()]
    for p in receiving:  # hosts the engine routes VnetLocal from this subnet (each of a NIC's addresses)
        for ip in p.ips:
            r = view.route_for(IPv4Address(ip))
            if r is not None and r.next_hop_type == "VnetLocal":
                lay.route(fab, f"{ip}/32", dev=p.name, table=table)
    for r in view.routes:
        if r.state != "Active":
            continue
        kind = r.next_hop_type
        if kind == "Internet":
            lay.route(fab, r.address_prefix, via=LINK_GW, dev="inet", table=table, onlink=True)
        elif kind == "VNetPeering":
            remote, _ = peers[r.remote_virtual_network.lower()]
            if net.peering_open(vnet.name, remote.name):
                lay.route(fab, r.address_prefix, via=LINK_GW, dev=port_name("p", remote.name), table=table, onlink=True)
            else:
                lay.route(fab, r.address_prefix, table=table, type="blackhole")
        elif kind == "VirtualAppliance":
            dev = _appliance_dev(lay, fab, vnet, view, r.next_hop_ip)
            if dev is not None:
                lay.route(fab, r.address_prefix, via=r.next_hop_ip, dev=dev, table=table, onlink=True)
            else:  # no VM behind the next hop, or the peering refuses access: dropped
                lay.route(fab, r.address_prefix, table=table, type="blackhole")
        elif kind == "InterfaceEndpoint":
            _to_private_endpoint(lay, fab, vnet, r.address_prefix, table)
        elif kind == "VirtualNetworkServiceEndpoint":
            # to the service's public address, keeping the private source (no SNAT: ``nft``)
            lay.route(fab, r.address_prefix, via=LINK_GW, dev="inet", table=table, onlink=True)
            lay.se_prefixes.setdefault(view.ref.lower(), []).append(r.address_prefix)
        elif kind == "VirtualNetworkGateway":
            vpn.gateway_route(lay, fab, vnet, r.address_prefix, table)
        else:  # VnetLocal (hosts above), None
            lay.route(fab, r.address_prefix, table=table, type="blackhole")


def _to_private_endpoint(lay: Layout, fab: str, vnet: VirtualNetwork, prefix: str, table: int) -> None:
    """A private endpoint's /32: to its port in this fabric, or over the peering to the fabric of
    the peered VNet that holds it (which delivers it); dropped when neither holds it."""
    ip = prefix.split("/")[0]
    own = lay.pe_ports.get((vnet.name.lower(), ip))
    if own is not None:
        lay.route(fab, prefix, dev=own.name, table=table)
        return
    for rname, (remote, _) in sorted(lay.net.peers[vnet.name.lower()].items()):
        if (rname, ip) in lay.pe_ports and lay.net.peering_open(vnet.name, remote.name):
            lay.route(fab, prefix, via=LINK_GW, dev=port_name("p", remote.name), table=table, onlink=True)
            return
    lay.route(fab, prefix, table=table, type="blackhole")


def _appliance_dev(lay: Layout, fab: str, vnet: VirtualNetwork, view, hop_ip: str) -> str | None:
    """The fabric's interface towards the NVA at ``hop_ip``: its port, or an appliance link."""
    nva, where = lay.net.appliance_at(view, IPv4Address(hop_ip))
    if nva is None:
        return None
    port = port_name("n", nva.name)
    if where.name.lower() == vnet.name.lower() and f"{port}@{fab}" in lay.ports:
        return port
    link = lay.alinks.get((vnet.name.lower(), nva.name.lower()))
    return link.dev if link is not None else None


def internet_routes(lay: Layout) -> None:
    """The internet namespace's routes back to the public outbound addresses: to the fabric
    that SNATs to them (VMs, route-all apps), or to the App Service outbound namespace; and to each
    instance-level public IP: the fabric of its NIC's VNet, which DNATs it (``nft``)."""
    net = lay.net
    for ip, holder in sorted(net.public_ip_at.items()):
        vnet_name = holder.resource.subnet.split("/")[0] if holder.kind == "network_interfaces" else ""
        if vnet_name.lower() in lay.fabric_of:
            lay.route(lay.inet, f"{IPv4Address(ip)}/32", via=LINK_GW, dev=port_name("f", vnet_name), onlink=True)
    for (kind, name), ip in sorted(net.outbound.items(), key=lambda kv: str(kv[1])):
        if kind == "network_interfaces":
            nic = net.by_name["network_interfaces"].get(name)
            vnet_name = nic.subnet.split("/")[0] if nic else ""
            if vnet_name.lower() in lay.fabric_of:
                lay.route(lay.inet, f"{ip}/32", via=LINK_GW, dev=port_name("f", vnet_name), onlink=True)
            continue
        fab = lay.app_public_via.get(str(ip))
        if fab is not None:
            vname = next(k for k, v in lay.fabric_of.items() if v == fab)
            lay.route(lay.inet, f"{ip}/32", via=LINK_GW, dev=port_name("f", vname), onlink=True)
        else:
            lay.route(lay.inet, f"{ip}/32", via=LINK_GW, dev="aso", onlink=True)
