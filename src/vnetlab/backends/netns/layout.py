"""Layout: the namespaces, links, addresses and neighbours that realize a lab, and where each
endpoint lives (see :mod:`.plan` for the picture). Routing tables and policy rules of the
fabrics are :mod:`.routing`'s, nft tables :mod:`.nft`'s; both work on the :class:`Layout`.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from ...engine.network import LabView, SubnetView
from ...model import NetworkInterface, Topology, VirtualNetwork, WebApp
from . import processes
from .state import (Address, Bridge, DesiredState, Namespace, Neighbour, NftTable, Process, Route, Rule,
                    VethPair, mac_for)

LINK_GW = "169.254.0.1"           # on-link next hop on transit links (never a destination)
DELIVER_TABLE = 500               # fabric: local delivery (from peerings and the internet)
SUBNET_TABLE_BASE = 1000
# fabric policy rule priorities (each block holds one rule per link/port)
PRIO_PEER, PRIO_INET = 100, 900
WORKER_OUT_TABLE = 10
INTERNAL_NET = IPv4Network("100.127.0.0/16")   # worker -> App Service outbound ns transit sources
# plan instance: per app k, a table out to the fabric (``iif`` rule) and one back to its sandbox (``fwmark``)
PIN_OUT_TABLE_BASE, PIN_BACK_TABLE_BASE, PRIO_PIN_OUT, PRIO_PIN_BACK = 200, 400, 1000, 2000


def short_hash(*parts: str, n: int = 8) -> str:
    return hashlib.sha256("/".join(p.lower() for p in parts).encode()).hexdigest()[:n]


def slug(name: str, n: int = 24) -> str:
    s = re.sub(r"[^a-z0-9-]", "-", name.lower())[:n].strip("-")
    return s or "x"


def port_name(kind: str, *parts: str) -> str:
    """A fabric-side interface name: ``n`` + hash for a NIC, ``w`` + hash for a web app instance."""
    return kind + short_hash(*parts)


@dataclass
class Names:
    """Where each endpoint lives: name (lowercase) -> namespace."""
    endpoints: dict[str, str] = field(default_factory=dict)
    fabrics: dict[str, str] = field(default_factory=dict)


@dataclass
class Port:
    """A routed port of a fabric: a VM's NIC, or a web app instance's way into the VNet."""
    fab: str
    name: str
    ip: str                                  # the NIC's address, or the plan instance's integration address
    subnet: str                              # VNET/SUBNET
    vnet: VirtualNetwork
    nic: NetworkInterface | None = None
    app: WebApp | None = None
    public: str | None = None                # a web app's public outbound address
    owner: bool = True                       # traffic to ``ip`` is delivered here (one app per plan instance)
    secondary: tuple[str, ...] = ()          # a NIC's secondary IP configurations' addresses

    @property
    def ips(self) -> tuple[str, ...]:
        """Every address delivered to this port: ``ip`` first."""
        return (self.ip, *self.secondary)


@dataclass
class AppBehind:
    """A web app instance behind its plan instance."""
    app: WebApp
    sdev: str             # the plan instance's link to the sandbox
    fdev: str             # the plan instance's link to the fabric (the fabric's port ``port``)
    sandbox_ip: str
    sandbox_mac: str
    port: str
    mtu: int
    label: str


@dataclass
class PlanInstance:
    """One plan instance in one integration subnet: holds the instance's integration address."""
    ns: str
    ip: str
    fab: str
    apps: list[AppBehind] = field(default_factory=list)


@dataclass
class ApplianceLink:
    """A veth from the fabric of ``src`` to the fabric of ``dst``, dedicated to one NVA in ``dst``."""
    dev: str
    rdev: str
    src: str
    dst: str
    fab: str
    rfab: str


class Layout:
    """The kernel objects being built for one lab."""

    def __init__(self, topo: Topology, lab_id: str):
        self.topo, self.id = topo, lab_id
        self.net = LabView(topo)
        self.ns: dict[str, Namespace] = {}
        self.bridges: list[Bridge] = []
        self.veths: list[VethPair] = []
        self.addresses: list[Address] = []
        self.routes: dict[tuple, Route] = {}
        self.rules: list[Rule] = []
        self.neigh: list[Neighbour] = []
        self.nft: list[NftTable] = []
        self.procs: list[Process] = []
        self.names = Names()
        self.used_ns: set[str] = set()
        self.inet = f"vl{lab_id}-internet"
        self.aso = f"vl{lab_id}-appsvc-out"
        self.fabric_of: dict[str, str] = {}                   # vnet -> fabric namespace
        self.subnet_table: dict[str, int] = {}                # VNET/SUBNET -> fabric table
        self.ports: dict[str, Port] = {}                      # "port@fabric"
        self.peer_links: dict[str, list[str]] = {}            # fabric -> its peering links
        self.alinks: dict[tuple[str, str], ApplianceLink] = {}  # (source vnet, NVA) -> link
        self.alink_rules: dict[str, list[str]] = {}           # fabric -> far ends of appliance links
        self.nva_tables: dict[str, dict[str, int]] = {}       # fabric -> NVA port -> table
        self.plan_instances: dict[tuple[str, str, int], PlanInstance] = {}
        self.app_public_via: dict[str, str] = {}              # route-all app's public address -> fabric
        self.aso_snat: list[tuple[str, str]] = []             # (outbound link, public address)
        self.pe_ns: dict[str, str] = {}                       # private endpoint -> its namespace
        self.pe_ports: dict[tuple[str, str], Port] = {}       # (vnet, private endpoint address) -> its port
        self.se_prefixes: dict[str, list[str]] = {}           # VNET/SUBNET -> its service endpoint routes' prefixes
        self.integrated: list[tuple[str, str, str]] = []      # (sandbox ns, VNet interface, its gateway)

    # -- helpers ---------------------------------------------------------------------------
    def nsname(self, kind: str, name: str) -> str:
        base = f"vl{self.id}-{kind}-{slug(name)}"
        if base in self.used_ns:
            base = f"{base[:40]}-{short_hash(kind, name, n=6)}"
        self.used_ns.add(base)
        return base

    def add_ns(self, name: str, forward: bool = False, infra: bool = False) -> str:
        """A namespace. The lab is IPv4, as the engine: no IPv6 address on any link. A host that
        does not forward (a VM, an app's sandbox, an internet, on-premises or private endpoint
        host) gets IPv6 off on each link and only the IPv4 keys that matter to it (redirects are
        sent by forwarding only, and nothing in the lab sends one): most often no ``/proc/sys``
        write at all (``Namespace.ipv6_per_link``), as new namespaces start with the kernel's
        defaults."""
        sysctls = {"net.ipv4.ip_forward": "1" if forward else "0",
                   "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0"}
        host = not forward and not infra
        if not host:
            sysctls |= {"net.ipv4.conf.all.send_redirects": "0", "net.ipv4.conf.default.send_redirects": "0",
                        "net.ipv4.conf.all.accept_redirects": "0",
                        "net.ipv6.conf.all.disable_ipv6": "1", "net.ipv6.conf.default.disable_ipv6": "1"}
        if infra:
            # The lab's own forwarding namespaces (fabrics, workers, outbound, internet) have policy
            # rules, which make the kernel check every forwarded packet's source with a full
            # reverse FIB lookup even with rp_filter off; accept_local skips that lookup (its only
            # other effect: a packet whose source is one of the namespace's own addresses, e.g. a
            # subnet gateway, is not dropped as a martian). Emulated hosts keep the defaults.
            sysctls["net.ipv4.conf.all.accept_local"] = "1"
        self.ns[name] = Namespace(name=name, sysctls=sysctls, ipv6_per_link=host)
        self.used_ns.add(name)
        return name

    def veth(self, ns_a: str, a: str, ns_b: str, b: str, mtu: int = 1500, alias: str | None = None) -> tuple[str, str]:
        ma, mb = mac_for(f"{self.id}/{ns_a}/{a}"), mac_for(f"{self.id}/{ns_b}/{b}")
        self.veths.append(VethPair(ns_a=ns_a, name_a=a, ns_b=ns_b, name_b=b, mac_a=ma, mac_b=mb, mtu=mtu,
                                   alias=alias))
        return ma, mb

    def link(self, ns_a: str, a: str, ns_b: str, b: str, alias: str | None = None) -> None:
        """A point-to-point transit link: each end reaches the other as ``LINK_GW``."""
        ma, mb = self.veth(ns_a, a, ns_b, b, alias=alias)
        self.neigh.append(Neighbour(ns=ns_a, dev=a, ip=LINK_GW, mac=mb))
        self.neigh.append(Neighbour(ns=ns_b, dev=b, ip=LINK_GW, mac=ma))

    def route(self, ns: str, dest: str, via: str | None = None, dev: str | None = None, table=None,
              type: str = "unicast", onlink: bool = False, src: str | None = None) -> None:
        if dest == "0.0.0.0/0":
            dest = "default"
        r = Route(ns=ns, dest=dest, via=via, dev=dev, table=table, type=type, onlink=onlink, src=src)
        self.routes.setdefault(r.key(), r)

    def fabric_ports(self, fab: str) -> list[Port]:
        return sorted((p for p in self.ports.values() if p.fab == fab), key=lambda p: p.name)

    def state(self) -> DesiredState:
        return DesiredState(namespaces=list(self.ns.values()), bridges=self.bridges, veths=self.veths,
                            addresses=self.addresses, routes=list(self.routes.values()), rules=self.rules,
                            neighbours=self.neigh, nft_tables=self.nft, processes=self.procs)

    # -- the App Service outbound and internet namespaces --------------------------------------
    def outer(self) -> None:
        self.add_ns(self.inet, forward=True, infra=True)
        self.add_ns(self.aso, forward=True, infra=True)
        self.link(self.aso, "inet", self.inet, "aso")
        self.route(self.aso, "default", via=LINK_GW, dev="inet", onlink=True)

    # -- fabrics and VMs ---------------------------------------------------------------------
    def fabric(self, vnet: VirtualNetwork, nics: list[NetworkInterface]) -> None:
        fab = self.add_ns(self.nsname("fab", vnet.name), forward=True, infra=True)
        self.fabric_of[vnet.name.lower()] = fab
        self.names.fabrics[vnet.name.lower()] = fab
        self.link(fab, "inet", self.inet, port_name("f", vnet.name), alias=f"internet link of {vnet.name}")
        self.rules.append(Rule(ns=fab, priority=PRIO_INET, iif="inet", table=DELIVER_TABLE))
        self.route(fab, "default", table=DELIVER_TABLE, type="blackhole")
        for i, sn in enumerate(sorted(vnet.subnets, key=lambda s: s.name.lower())):
            self.subnet_table[f"{vnet.name}/{sn.name}".lower()] = SUBNET_TABLE_BASE + i
            gateways = [f"{IPv4Address(int(n.network_address) + 1)}/{n.prefixlen}" for n in sn.networks]
            self.bridges.append(Bridge(ns=fab, name=port_name("b", vnet.name, sn.name), addresses=gateways,
                                       mac=mac_for(f"{self.id}/{fab}/{sn.name}"), alias=f"subnet {vnet.name}/{sn.name}"))
        for nic in sorted(nics, key=lambda n: n.name.lower()):
            vm = self.net.vm_of_nic.get(nic.name.lower())
            if vm is not None and nic.private_ip_address:  # no VM holds it: nothing answers, as in the engine
                self.vm(fab, vnet, nic, vm)

    def vm(self, fab: str, vnet: VirtualNetwork, nic: NetworkInterface, vm) -> None:
        view = self.net.subnet_view(nic.subnet)
        sn = view.subnet
        ns = self.add_ns(self.nsname("vm", vm.name), forward=self.net.guest_forwards(nic))  # the guest OS's ip_forward
        self.names.endpoints[vm.name.lower()] = ns
        self.names.endpoints.setdefault(nic.name.lower(), ns)
        port = port_name("n", nic.name)
        vm_m, f_m = self.veth(ns, "eth0", fab, port, alias=self.topo.id_of("network_interfaces", nic))
        own = sn.network_of(nic.private_ip_address) or sn.network  # the subnet range holding the NIC
        gw = str(IPv4Address(int(own.network_address) + 1))
        self.addresses.append(Address(ns=ns, dev="eth0", cidr=f"{nic.private_ip_address}/{own.prefixlen}",
                                      noprefixroute=True))
        secondary = tuple(nic.addresses[1:])
        for ip in secondary:  # /32: never the kernel's "secondary" of the primary, gone with it on a change
            self.addresses.append(Address(ns=ns, dev="eth0", cidr=f"{ip}/32", noprefixroute=True))
        # the VM's own flows leave from the primary address (Azure's default); replies from the
        # address they answer
        src = nic.private_ip_address if secondary else None
        self.route(ns, "default", via=gw, dev="eth0", onlink=True, src=src)
        for netw in sn.networks:
            self.route(ns, str(netw), via=gw, dev="eth0", onlink=True, src=src)
        self.neigh.append(Neighbour(ns=ns, dev="eth0", ip=gw, mac=f_m))
        for ip in nic.addresses:
            self.neigh.append(Neighbour(ns=fab, dev=port, ip=ip, mac=vm_m))
        self.ports[f"{port}@{fab}"] = Port(fab, port, nic.private_ip_address, view.ref, vnet, nic=nic,
                                           secondary=secondary)
        if vm.running:
            self.services(ns, vm)
        else:  # stopped or deallocated: nothing runs, nothing answers, sends or forwards (the engine's VmNotRunning)
            self.nft.append(NftTable(ns=ns, family="ip", name="vloff", text="\n".join(
                [f"  chain {c} {{\n    type filter hook {hook} priority filter; policy drop;\n  }}"
                 for c, hook in (("inp", "input"), ("out", "output"), ("fw", "forward"))])))

    def services(self, ns: str, vm) -> None:
        tcp = [s.port for s in vm.services if s.protocol == "Tcp" and not s.command]
        udp = [s.port for s in vm.services if s.protocol == "Udp" and not s.command]
        if tcp or udp:
            self.procs.append(processes.responder(ns, vm.name, tcp, udp))
        for s in vm.services:
            if s.command:
                self.procs.append(processes.command(ns, vm.name, s.protocol, s.port, s.command))

    def peerings(self) -> None:
        done = set()
        for vnet in self.topo.virtual_networks:
            for rname in self.net.peers[vnet.name.lower()]:
                pair = tuple(sorted((vnet.name.lower(), rname)))
                if pair in done:
                    continue
                done.add(pair)
                a, b = pair
                fa, fb = self.fabric_of[a], self.fabric_of[b]
                ia, ib = port_name("p", b), port_name("p", a)   # each end named after the VNet it leads to
                self.link(fa, ia, fb, ib, alias=f"peering {a} <-> {b}")
                for f, dev in ((fa, ia), (fb, ib)):
                    n = self.peer_links.setdefault(f, [])
                    self.rules.append(Rule(ns=f, priority=PRIO_PEER + len(n), iif=dev, table=DELIVER_TABLE))
                    n.append(dev)

    # -- web apps ----------------------------------------------------------------------------
    def apps(self) -> None:
        internal = int(INTERNAL_NET.network_address) + 2
        for app in sorted(self.topo.web_apps, key=lambda a: a.name.lower()):
            plan = self.topo.find("app_service_plans", app.plan)
            for inst in range(plan.instances if plan else 1):
                self.app_instance(app, inst, str(IPv4Address(internal)))
                internal += 1

    def app_instance(self, app: WebApp, inst: int, internal_ip: str) -> None:
        sb = self.net.sandbox(app, inst)
        label = app.name if inst == 0 else f"{app.name}-{inst}"
        sns = self.add_ns(self.nsname("app", label))
        wns = self.add_ns(self.nsname("wrk", label), forward=True, infra=True)
        if inst == 0:
            self.names.endpoints[app.name.lower()] = sns
        self.names.endpoints[f"{app.name.lower()}#{inst}"] = sns
        self.names.endpoints[f"{app.name.lower()}#{inst}:worker"] = wns
        direct = sb.integrated and sb.integration_ip is not None
        view = self.net.subnet_view(sb.integration_subnet) if direct else None
        port = port_name("w", app.name, str(inst))
        pin = self.plan_instance(app, inst, view, str(sb.integration_ip)) if view is not None else None
        for itf in sb.interfaces:
            iface = ipaddress.ip_interface(itf.address)
            gw_ip = str(IPv4Address(int(iface.network.network_address) + 1))
            self.addresses.append(Address(ns=sns, dev=itf.name, cidr=itf.address))
            if pin is not None and itf.name == sb.vnet_iface:
                # the VNet interface leads to the plan instance, which holds the integration
                # address for every app of the plan behind it
                sdev, fdev = port_name("s", app.name), port_name("f", app.name)
                s_m, p_m = self.veth(sns, itf.name, pin.ns, sdev, mtu=itf.mtu, alias=f"VNet integration of {label}")
                self.neigh.append(Neighbour(ns=sns, dev=itf.name, ip=gw_ip, mac=p_m))
                pin.apps.append(AppBehind(app, sdev, fdev, str(iface.ip), s_m, port, itf.mtu, label))
                self.integrated.append((sns, itf.name, gw_ip))
                continue
            wdev = "se" if itf.name == sb.interfaces[0].name else "sv"
            s_m, w_m = self.veth(sns, itf.name, wns, wdev, mtu=itf.mtu)
            self.addresses.append(Address(ns=wns, dev=wdev, cidr=f"{gw_ip}/{iface.network.prefixlen}"))
            self.neigh.append(Neighbour(ns=wns, dev=wdev, ip=str(iface.ip), mac=s_m))
            self.neigh.append(Neighbour(ns=sns, dev=itf.name, ip=gw_ip, mac=w_m))
        connected = {(str(ipaddress.ip_interface(i.address).network), i.name) for i in sb.interfaces}
        for r in sb.routes:
            if r.gateway:
                self.route(sns, r.destination, via=r.gateway, dev=r.iface)
            elif (r.destination, r.iface) not in connected:
                self.route(sns, r.destination, dev=r.iface)
        if app.running:  # a stopped app runs nothing; a restart is a new process (its spec changes)
            proc = processes.responder(sns, app.name, [80], webapp=True)
            proc.env["VNETLAB_APP_RESTARTS"] = str(app.restarts)
            self.procs.append(proc)
        # worker -> App Service outbound -> internet (the sandbox's eth0 path)
        alink = port_name("w", app.name, str(inst))
        w_m, a_m = self.veth(wns, "wo", self.aso, alink, alias=f"outbound of {label}")
        self.neigh.append(Neighbour(ns=wns, dev="wo", ip=LINK_GW, mac=a_m))
        self.neigh.append(Neighbour(ns=self.aso, dev=alink, ip=internal_ip, mac=w_m))
        self.route(wns, "default", via=LINK_GW, dev="wo", table=WORKER_OUT_TABLE, onlink=True)
        self.rules.append(Rule(ns=wns, priority=100, iif="se", table=WORKER_OUT_TABLE))
        self.route(self.aso, f"{internal_ip}/32", dev=alink)
        self.aso_snat.append((alink, str(sb.outbound_ip)))
        if pin is not None:
            # the integration address is reached through one port per plan instance (its first
            # app's); the others only send
            owner = not any(p.fab == pin.fab and p.ip == pin.ip and p.app is not None for p in self.ports.values())
            self.ports[f"{port}@{pin.fab}"] = Port(pin.fab, port, pin.ip, view.ref, view.vnet, app=app,
                                                   public=str(sb.outbound_ip), owner=owner)
            if sb.route_all:
                self.app_public_via[str(sb.outbound_ip)] = pin.fab
        elif sb.integrated:
            self.route(wns, "default", type="blackhole")  # no address left: nothing leaves
        self.nft.append(NftTable(ns=wns, family="ip", name="vlwrk", text=_worker_table(internal_ip)))

    def plan_instance(self, app: WebApp, inst: int, view: SubnetView, ip: str) -> PlanInstance:
        """The namespace of one plan instance in one integration subnet: it holds the instance's
        integration address, shared by every app of the plan integrated there (as in Azure)."""
        key = (app.plan.lower(), view.ref.lower(), inst)
        if key not in self.plan_instances:
            ns = self.add_ns(self.nsname("pin", f"{app.plan}-{inst}-{view.subnet.name}"), forward=True, infra=True)
            self.names.endpoints[f"{app.plan.lower()}#{inst}:plan"] = ns
            self.plan_instances[key] = PlanInstance(ns, ip, self.fabric_of[view.vnet.name.lower()])
        return self.plan_instances[key]

    def plan_instance_links(self) -> None:
        """Each app's sandbox is a port of its plan instance, which SNATs what it sends to the
        fabric to the integration address (one conntrack zone per app, as two sandboxes may send
        identical flows) and routes the replies back to the app that sent them (the flow's
        conntrack mark names the app, a ``fwmark`` rule its table). Each app leaves towards the
        fabric on a link of its own (the fabric's port for the app: its NSG chains, its public
        SNAT); the replies all come back on the first one, which owns the address."""
        for pin in self.plan_instances.values():
            pin.apps.sort(key=lambda a: a.app.name.lower())
            for k, a in enumerate(pin.apps):
                p_m, f_m = self.veth(pin.ns, a.fdev, pin.fab, a.port, mtu=a.mtu, alias=f"VNet integration of {a.label}")
                self.neigh.append(Neighbour(ns=pin.ns, dev=a.fdev, ip=LINK_GW, mac=f_m))
                self.neigh.append(Neighbour(ns=pin.ns, dev=a.sdev, ip=a.sandbox_ip, mac=a.sandbox_mac))
                self.neigh.append(Neighbour(ns=pin.fab, dev=a.port, ip=pin.ip, mac=p_m))
                if k == 0:
                    self.addresses.append(Address(ns=pin.ns, dev=a.fdev, cidr=f"{pin.ip}/32"))
                out_table, back_table = PIN_OUT_TABLE_BASE + k, PIN_BACK_TABLE_BASE + k
                self.route(pin.ns, "default", via=LINK_GW, dev=a.fdev, table=out_table, onlink=True)
                self.route(pin.ns, "default", dev=a.sdev, table=back_table)
                self.rules.append(Rule(ns=pin.ns, priority=PRIO_PIN_OUT + k, iif=a.sdev, table=out_table))
                self.rules.append(Rule(ns=pin.ns, priority=PRIO_PIN_BACK + k, fwmark=k + 1, table=back_table))

    # -- internet hosts ------------------------------------------------------------------------
    def internet_hosts(self) -> None:
        self.route(self.inet, "default", type="blackhole")
        for h in self.topo.internet_hosts:
            ns = self.add_ns(self.nsname("host", h.name))
            self.names.endpoints[h.name.lower()] = ns
            dev = port_name("h", h.name)
            hm, im = self.veth(ns, "eth0", self.inet, dev, alias=f"internet host {h.name}")
            self.addresses.append(Address(ns=ns, dev="eth0", cidr=f"{h.ip}/32"))
            self.route(ns, "default", via=LINK_GW, dev="eth0", onlink=True)
            self.neigh.append(Neighbour(ns=ns, dev="eth0", ip=LINK_GW, mac=im))
            self.neigh.append(Neighbour(ns=self.inet, dev=dev, ip=h.ip, mac=hm))
            self.route(self.inet, f"{h.ip}/32", dev=dev)
            tcp = [s.port for s in h.services if s.protocol == "Tcp"]
            udp = [s.port for s in h.services if s.protocol == "Udp"]
            if tcp or udp:
                self.procs.append(processes.responder(ns, h.name, tcp, udp))


def _worker_table(internal_ip: str) -> str:
    return "\n".join([
        "  chain post {", "    type nat hook postrouting priority srcnat; policy accept;",
        f'    oifname "wo" snat to {internal_ip}', "  }",
        "  chain inp {", "    type filter hook input priority filter; policy accept;",
        "    ct state established,related accept", '    iifname "wo" drop', "  }",
        "  chain fw {", "    type filter hook forward priority filter; policy drop;",
        "    ct state established,related accept", '    iifname { "se", "sv" } accept', "  }"])
