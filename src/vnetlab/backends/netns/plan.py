"""Plan: the engine's compiled view of a lab -> the kernel state that realizes it (pure).

``plan(topology, lab_id)`` builds a :class:`DesiredState` from ``Network(topology)`` only:
effective routes (``SubnetView.routes``/``.lookup``), compiled NSG rules (``CompiledNsg``),
sandbox tables (``Network.sandbox``), integration and public outbound addresses. It never
decides an Azure question itself; it places the engine's answers into namespaces.

Layout (every namespace ``vl<lab id>-...``)::

  VM NIC ns  eth0 ip/len noprefixroute, default + subnet via .1 onlink (every neighbour is
             the gateway, as Azure's SDN answers every ARP with its own MAC)
      |  veth  (fabric side ``n<hash>``: a routed L3 port, not a bridge port)
  fabric ns (one per VNet)  bridge ``b<hash>`` per subnet holding the gateway .1/len;
      policy routing ``ip rule iif <port> lookup <table of the port's subnet>``;
      tables = the subnet's Active effective routes; nft table ``ip vlfab``:
      TTL-invisible forwarding, NSGs (forward hook, ``ct state established`` first, one
      chain per NSG x direction, ports chained NIC->subnet outbound and subnet->NIC
      inbound), forwarded-traffic checks on peering links, SNAT to the public address by
      ingress port when leaving to the internet
      |                   |                  |                         |
   peer links ``p..``   appliance links    ``inet`` link            app ports ``w<hash>``
   (other fabrics)      ``a..`` (to an     internet ns (hosts        = the sandbox's VNet
                        NVA in a peered    behind it, private        interface (VNet
                        VNet's fabric)     dst dropped)              integration)
  sandbox ns (one per web app instance): exactly the engine's sandbox interfaces, MTU and
  routes; when integrated, its VNet interface leads to the plan instance ns (one per plan
  x integration subnet x instance), which holds the instance's integration address for
  every app of the plan behind it, SNATs each app's traffic to it (a conntrack zone per
  app) and sends it to the fabric on the app's own port ``w<hash>``; replies return on the
  first app's port and reach the right sandbox by conntrack mark; eth0 is a veth to the
  worker ns (``se``), which SNATs to an internal address and forwards to the App Service
  outbound ns (SNAT to the app's public address) -> internet ns.

The platform hop of a web app (the one hop the note's ``ttl=63`` counts) is the fabric for
the VNet path: no +1 for what comes from an app port, one more -1 for what leaves on one.
New connections to an integration address get a TCP reset from the fabric (``i_<port>``);
the reset leaves by the integration subnet's routes (``ip rule from <addr> iif lo``).

NVAs: a route to an NVA of the same VNet goes ``via <nva> dev <its port>``; to an NVA of a
peered VNet over an appliance link (one veth per source VNet x NVA) whose far end is
policy-routed to the NVA's port. What an NVA forwards to the internet is SNATed to its
public address by the fabric of the NVA's VNet, in a conntrack zone of its own (the flow
crossed the fabric once already on its way to the NVA); the replies go back through the
NVA (conntrack mark -> ``fwmark`` rule -> the NVA's table).

Why routed NIC ports instead of bridge ports: traffic between two NICs of one subnet must
cross the NSGs. Bridged frames skip the inet forward hook unless br_netfilter is loaded,
which is host-global. With each NIC as its own L3 port the forward hook sees every flow
with ``iifname``/``oifname`` naming the NIC, which is what NIC-level NSGs, "NVA without IP
forwarding" and SNAT-by-NIC need. The subnet bridge keeps the gateway address.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from pathlib import Path
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from ...engine.network import Network
from ...engine.security import FULL_PORTS, PRIVATE_RANGES, ports_match
from ...engine.trace import _holder_of
from ...model import Topology
from . import processes
from .state import (Address, Bridge, DesiredState, Namespace, Neighbour, NftTable, Process, Route, Rule,
                    VethPair, mac_for, ttl_decrement_body, ttl_preserve_body)

LINK_GW = "169.254.0.1"           # on-link next hop on transit links (never a destination)
DELIVER_TABLE = 500               # fabric: local delivery (from peerings and the internet)
SUBNET_TABLE_BASE = 1000
NVA_TABLE_BASE = 4000             # fabric: "to this NVA" (appliance links, internet replies of its flows)
NVA_MARK_BASE = 0x100             # fabric: ct mark of a flow an NVA sent to the internet
# fabric policy rule priorities (each block holds one rule per link/port)
PRIO_PEER, PRIO_ALINK, PRIO_NVA_RETURN, PRIO_INET, PRIO_PORT, PRIO_APP_RST = 100, 300, 500, 900, 1000, 20000
WORKER_OUT_TABLE = 10
# plan instance: per app k, a table out to the fabric (``iif`` rule) and one back to its sandbox (``fwmark``)
PIN_OUT_TABLE_BASE, PIN_BACK_TABLE_BASE, PRIO_PIN_OUT, PRIO_PIN_BACK = 200, 400, 1000, 2000
INTERNAL_NET = IPv4Network("100.127.0.0/16")   # worker -> App Service outbound ns transit sources


LAB_ID_LEN = 12   # hex digits: 48 bits, no collision between homes in practice; names stay < 64 chars


def lab_id_for(home) -> str:
    return hashlib.sha256(str(Path(home).resolve()).encode()).hexdigest()[:LAB_ID_LEN]


def _h(*parts: str, n: int = 8) -> str:
    return hashlib.sha256("/".join(p.lower() for p in parts).encode()).hexdigest()[:n]


def _slug(name: str, n: int = 24) -> str:
    s = re.sub(r"[^a-z0-9-]", "-", name.lower())[:n].strip("-")
    return s or "x"


def _cidrs(nets) -> list[str]:
    """(network, mask) pairs -> collapsed CIDR strings (nft interval sets refuse overlaps)."""
    objs = [IPv4Network((n, str(IPv4Address(m)))) for n, m in nets]
    return [str(x) for x in ipaddress.collapse_addresses(objs)]


def _ports(ranges) -> str:
    merged: list[list[int]] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return ", ".join(str(lo) if lo == hi else f"{lo}-{hi}" for lo, hi in merged)


@dataclass
class Names:
    """Where each endpoint lives: name (lowercase) -> namespace."""
    endpoints: dict[str, str] = field(default_factory=dict)
    fabrics: dict[str, str] = field(default_factory=dict)


class _Builder:
    def __init__(self, topo: Topology, lab_id: str):
        self.topo, self.id = topo, lab_id
        self.net = Network(topo)
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
        self._used_ns: set[str] = set()
        self.nva_tables: dict[str, dict[str, int]] = {}
        self.alink_rules: dict[str, list[str]] = {}
        self.alinks: dict[tuple[str, str], dict] = {}
        self.peer_links: dict[str, list[str]] = {}
        self.plan_instances: dict[tuple[str, str, int], dict] = {}

    # -- helpers ---------------------------------------------------------------------------
    def nsname(self, kind: str, name: str) -> str:
        base = f"vl{self.id}-{kind}-{_slug(name)}"
        if base in self._used_ns:
            base = f"{base[:40]}-{_h(kind, name, n=6)}"
        self._used_ns.add(base)
        return base

    def add_ns(self, name: str, forward: bool = False, extra: dict | None = None, infra: bool = False) -> str:
        sysctls = {"net.ipv4.ip_forward": "1" if forward else "0",
                   "net.ipv4.conf.all.rp_filter": "0", "net.ipv4.conf.default.rp_filter": "0",
                   "net.ipv4.conf.all.send_redirects": "0", "net.ipv4.conf.default.send_redirects": "0",
                   "net.ipv4.conf.all.accept_redirects": "0"}
        if infra:
            # The lab's own forwarding namespaces (fabrics, workers, outbound, internet) have policy
            # rules, which make the kernel check every forwarded packet's source with a full
            # reverse FIB lookup even with rp_filter off; accept_local skips that lookup (its only
            # other effect: a packet whose source is one of the namespace's own addresses, e.g. a
            # subnet gateway, is not dropped as a martian). Emulated hosts keep the defaults.
            sysctls["net.ipv4.conf.all.accept_local"] = "1"
        sysctls.update(extra or {})
        self.ns[name] = Namespace(name=name, sysctls=sysctls)
        return name

    def veth(self, ns_a: str, a: str, ns_b: str, b: str, mtu: int = 1500, alias: str | None = None) -> tuple[str, str]:
        ma, mb = mac_for(f"{self.id}/{ns_a}/{a}"), mac_for(f"{self.id}/{ns_b}/{b}")
        self.veths.append(VethPair(ns_a=ns_a, name_a=a, ns_b=ns_b, name_b=b, mac_a=ma, mac_b=mb, mtu=mtu,
                                   alias=alias))
        return ma, mb

    def route(self, ns: str, dest: str, via: str | None = None, dev: str | None = None, table=None,
              type: str = "unicast", onlink: bool = False) -> None:
        if dest == "0.0.0.0/0":
            dest = "default"
        r = Route(ns=ns, dest=dest, via=via, dev=dev, table=table, type=type, onlink=onlink)
        self.routes.setdefault(r.key(), r)

    # -- build -----------------------------------------------------------------------------
    def build(self) -> tuple[DesiredState, Names]:
        topo = self.topo
        self.inet = self.add_ns(f"vl{self.id}-internet", forward=True, infra=True)
        self._used_ns.add(self.inet)
        self.aso = self.add_ns(f"vl{self.id}-appsvc-out", forward=True, infra=True)
        self._used_ns.add(self.aso)
        self.inet_nft_fwd: list[str] = []
        self.inet_ifaces: list[str] = []
        # aso <-> internet
        aso_m, inet_m = self.veth(self.aso, "inet", self.inet, "aso")
        self.neigh.append(Neighbour(ns=self.aso, dev="inet", ip=LINK_GW, mac=inet_m))
        self.neigh.append(Neighbour(ns=self.inet, dev="aso", ip=LINK_GW, mac=aso_m))
        self.route(self.aso, "default", via=LINK_GW, dev="inet", onlink=True)
        self.inet_ifaces.append("aso")
        self.fabric_of: dict[str, str] = {}
        for vnet in topo.virtual_networks:
            self._fabric(vnet)
        self._peerings()
        self._apps()
        self._plan_instance_links()
        self._appliance_links()
        self._internet()
        for vnet in topo.virtual_networks:
            self._fabric_nft(vnet)
        ds = DesiredState(namespaces=list(self.ns.values()), bridges=self.bridges, veths=self.veths,
                          addresses=self.addresses, routes=list(self.routes.values()), rules=self.rules,
                          neighbours=self.neigh, nft_tables=self.nft, processes=self.procs)
        return ds, self.names

    # -- fabrics and VMs ---------------------------------------------------------------------
    def _fabric(self, vnet) -> None:
        net, topo = self.net, self.topo
        fab = self.add_ns(self.nsname("fab", vnet.name), forward=True, infra=True)
        self.fabric_of[vnet.name.lower()] = fab
        self.names.fabrics[vnet.name.lower()] = fab
        self.ports: dict[str, dict] = getattr(self, "ports", {})
        # fabric <-> internet
        f_m, i_m = self.veth(fab, "inet", self.inet, "f" + _h(vnet.name), alias=f"internet link of {vnet.name}")
        self.neigh.append(Neighbour(ns=fab, dev="inet", ip=LINK_GW, mac=i_m))
        self.neigh.append(Neighbour(ns=self.inet, dev="f" + _h(vnet.name), ip=LINK_GW, mac=f_m))
        self.inet_ifaces.append("f" + _h(vnet.name))
        self.rules.append(Rule(ns=fab, priority=PRIO_INET, iif="inet", table=DELIVER_TABLE))
        self.route(fab, "default", table=DELIVER_TABLE, type="blackhole")
        subnets = sorted(vnet.subnets, key=lambda s: s.name.lower())
        self.subnet_table = getattr(self, "subnet_table", {})
        for i, sn in enumerate(subnets):
            ref = f"{vnet.name}/{sn.name}".lower()
            self.subnet_table[ref] = SUBNET_TABLE_BASE + i
            netw = sn.network
            gw = IPv4Address(int(netw.network_address) + 1)
            self.bridges.append(Bridge(ns=fab, name="b" + _h(vnet.name, sn.name),
                                       addresses=[f"{gw}/{netw.prefixlen}"], mac=mac_for(f"{self.id}/{fab}/{sn.name}"),
                                       alias=f"subnet {vnet.name}/{sn.name}"))
        # VM NICs
        vm_of = {vm.network_interface.lower(): vm for vm in topo.virtual_machines}
        for nic in sorted(topo.network_interfaces, key=lambda n: n.name.lower()):
            if nic.subnet.split("/")[0].lower() != vnet.name.lower() or not nic.private_ip_address:
                continue
            vm = vm_of.get(nic.name.lower())
            if vm is None:
                continue  # no VM holds it: nothing answers, as in the engine
            view = net.subnet_view(nic.subnet)
            sn = view.subnet
            ns = self.add_ns(self.nsname("vm", vm.name), forward=nic.enable_ip_forwarding)
            self.names.endpoints[vm.name.lower()] = ns
            self.names.endpoints.setdefault(nic.name.lower(), ns)
            port = "n" + _h(nic.name)
            vm_m, f_m = self.veth(ns, "eth0", fab, port, alias=topo.id_of("network_interfaces", nic))
            gw = str(IPv4Address(int(sn.network.network_address) + 1))
            self.addresses.append(Address(ns=ns, dev="eth0", cidr=f"{nic.private_ip_address}/{sn.network.prefixlen}",
                                          noprefixroute=True))
            self.route(ns, "default", via=gw, dev="eth0", onlink=True)
            self.route(ns, str(sn.network), via=gw, dev="eth0", onlink=True)
            self.neigh.append(Neighbour(ns=ns, dev="eth0", ip=gw, mac=f_m))
            self.neigh.append(Neighbour(ns=fab, dev=port, ip=nic.private_ip_address, mac=vm_m))
            self.ports[port + "@" + fab] = {"fab": fab, "port": port, "ip": nic.private_ip_address,
                                            "subnet": view.ref, "nic": nic, "vnet": vnet}
            self._services(ns, vm)

    def _services(self, ns: str, vm) -> None:
        tcp = [s.port for s in vm.services if s.protocol == "Tcp" and not s.command]
        udp = [s.port for s in vm.services if s.protocol == "Udp" and not s.command]
        if tcp or udp:
            self.procs.append(processes.responder(ns, vm.name, tcp, udp))
        for s in vm.services:
            if s.command:
                self.procs.append(processes.command(ns, vm.name, s.protocol, s.port, s.command))

    def _peerings(self) -> None:
        done = set()
        self.peer_links: dict[str, list[str]] = {}
        for vnet in self.topo.virtual_networks:
            for rname in self.net.peers[vnet.name.lower()]:
                pair = tuple(sorted((vnet.name.lower(), rname)))
                if pair in done:
                    continue
                done.add(pair)
                a, b = pair
                fa, fb = self.fabric_of[a], self.fabric_of[b]
                ia, ib = "p" + _h(b), "p" + _h(a)   # each end named after the VNet it leads to
                ma, mb = self.veth(fa, ia, fb, ib, alias=f"peering {a} <-> {b}")
                self.neigh.append(Neighbour(ns=fa, dev=ia, ip=LINK_GW, mac=mb))
                self.neigh.append(Neighbour(ns=fb, dev=ib, ip=LINK_GW, mac=ma))
                for f, dev in ((fa, ia), (fb, ib)):
                    n = self.peer_links.setdefault(f, [])
                    self.rules.append(Rule(ns=f, priority=PRIO_PEER + len(n), iif=dev, table=DELIVER_TABLE))
                    n.append(dev)

    # -- web apps ----------------------------------------------------------------------------
    def _apps(self) -> None:
        net, topo = self.net, self.topo
        internal = int(INTERNAL_NET.network_address) + 2
        self.app_public_via: dict[str, str] = {}
        for app in sorted(topo.web_apps, key=lambda a: a.name.lower()):
            plan = topo.find("app_service_plans", app.plan)
            count = plan.instances if plan else 1
            for inst in range(count):
                sb = net.sandbox(app, inst)
                label = app.name if inst == 0 else f"{app.name}-{inst}"
                sns = self.add_ns(self.nsname("app", label))
                wns = self.add_ns(self.nsname("wrk", label), forward=True, infra=True)
                if inst == 0:
                    self.names.endpoints[app.name.lower()] = sns
                self.names.endpoints[f"{app.name.lower()}#{inst}"] = sns
                self.names.endpoints[f"{app.name.lower()}#{inst}:worker"] = wns
                direct = sb.integrated and sb.integration_ip is not None
                if direct:
                    view = net.subnet_view(sb.integration_subnet)
                    fab = self.fabric_of[view.vnet.name.lower()]
                    port = "w" + _h(app.name, str(inst))
                    pin = self._plan_instance(app, inst, view, sb)
                for itf in sb.interfaces:
                    iface = ipaddress.ip_interface(itf.address)
                    gw_ip = str(IPv4Address(int(iface.network.network_address) + 1))
                    self.addresses.append(Address(ns=sns, dev=itf.name, cidr=itf.address))
                    if direct and itf.name == sb.vnet_iface:
                        # the VNet interface leads to the plan instance, which holds the
                        # integration address for every app of the plan behind it
                        s_m, p_m = self.veth(sns, itf.name, pin["ns"], "s" + _h(app.name), mtu=itf.mtu,
                                             alias=f"VNet integration of {label}")
                        self.neigh.append(Neighbour(ns=sns, dev=itf.name, ip=gw_ip, mac=p_m))
                        pin["apps"].append({"app": app, "sdev": "s" + _h(app.name), "fdev": "f" + _h(app.name),
                                            "sandbox_ip": str(iface.ip), "sandbox_mac": s_m, "port": port,
                                            "mtu": itf.mtu, "label": label})
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
                self.procs.append(processes.responder(sns, app.name, [80], webapp=True))
                # worker -> App Service outbound -> internet (the sandbox's eth0 path)
                internal_ip = str(IPv4Address(internal))
                internal += 1
                alink = "w" + _h(app.name, str(inst))
                w_m, a_m = self.veth(wns, "wo", self.aso, alink, alias=f"outbound of {label}")
                self.neigh.append(Neighbour(ns=wns, dev="wo", ip=LINK_GW, mac=a_m))
                self.neigh.append(Neighbour(ns=self.aso, dev=alink, ip=internal_ip, mac=w_m))
                self.route(wns, "default", via=LINK_GW, dev="wo", table=WORKER_OUT_TABLE, onlink=True)
                self.rules.append(Rule(ns=wns, priority=100, iif="se", table=WORKER_OUT_TABLE))
                self.route(self.aso, f"{internal_ip}/32", dev=alink)
                self.aso_snat = getattr(self, "aso_snat", [])
                self.aso_snat.append((alink, str(sb.outbound_ip)))
                if direct:
                    vnet = view.vnet
                    # the integration address is reached through one port per plan instance
                    # (its first app's); the others only send
                    owner = not any(q.get("pin") == pin["ns"] for q in self.ports.values())
                    self.ports[port + "@" + fab] = {"fab": fab, "port": port, "ip": str(sb.integration_ip),
                                                    "subnet": view.ref, "nic": None, "app": app, "vnet": vnet,
                                                    "public": str(sb.outbound_ip), "pin": pin["ns"],
                                                    "owner": owner}
                    if sb.route_all:
                        self.app_public_via[str(sb.outbound_ip)] = fab
                elif sb.integrated:
                    self.route(wns, "default", type="blackhole")  # no address left: nothing leaves
                self.nft.append(NftTable(ns=wns, family="ip", name="vlwrk", text="\n".join([
                    "  chain post {", "    type nat hook postrouting priority srcnat; policy accept;",
                    f'    oifname "wo" snat to {internal_ip}', "  }",
                    "  chain inp {", "    type filter hook input priority filter; policy accept;",
                    "    ct state established,related accept", '    iifname "wo" drop', "  }",
                    "  chain fw {", "    type filter hook forward priority filter; policy drop;",
                    "    ct state established,related accept", '    iifname { "se", "sv" } accept', "  }"])))

    def _plan_instance(self, app, inst: int, view, sb) -> dict:
        """The namespace of one plan instance in one integration subnet: it holds the instance's
        integration address, shared by every app of the plan integrated there (as in Azure)."""
        key = (app.plan.lower(), view.ref.lower(), inst)
        if key not in self.plan_instances:
            ns = self.add_ns(self.nsname("pin", f"{app.plan}-{inst}-{view.subnet.name}"), forward=True, infra=True)
            self.names.endpoints[f"{app.plan.lower()}#{inst}:plan"] = ns
            self.plan_instances[key] = {"ns": ns, "ip": str(sb.integration_ip),
                                        "fab": self.fabric_of[view.vnet.name.lower()], "apps": []}
        return self.plan_instances[key]

    def _plan_instance_links(self) -> None:
        """Each app's sandbox is a port of its plan instance, which SNATs what it sends to the
        fabric to the integration address (one conntrack zone per app, as two sandboxes may send
        identical flows) and routes the replies back to the app that sent them (the flow's
        conntrack mark names the app, a ``fwmark`` rule its table). Each app leaves towards the
        fabric on a link of its own (the fabric's port for the app: its NSG chains, its public
        SNAT); the replies all come back on the first one, which owns the address."""
        for pin in self.plan_instances.values():
            ns, zones, marks = pin["ns"], [], []
            for k, a in enumerate(sorted(pin["apps"], key=lambda a: a["app"].name.lower())):
                p_m, f_m = self.veth(ns, a["fdev"], pin["fab"], a["port"], mtu=a["mtu"],
                                     alias=f"VNet integration of {a['label']}")
                self.neigh.append(Neighbour(ns=ns, dev=a["fdev"], ip=LINK_GW, mac=f_m))
                self.neigh.append(Neighbour(ns=ns, dev=a["sdev"], ip=a["sandbox_ip"], mac=a["sandbox_mac"]))
                self.neigh.append(Neighbour(ns=pin["fab"], dev=a["port"], ip=pin["ip"], mac=p_m))
                if k == 0:
                    self.addresses.append(Address(ns=ns, dev=a["fdev"], cidr=f"{pin['ip']}/32"))
                out_table, back_table = PIN_OUT_TABLE_BASE + k, PIN_BACK_TABLE_BASE + k
                self.route(ns, "default", via=LINK_GW, dev=a["fdev"], table=out_table, onlink=True)
                self.route(ns, "default", dev=a["sdev"], table=back_table)
                self.rules.append(Rule(ns=ns, priority=PRIO_PIN_OUT + k, iif=a["sdev"], table=out_table))
                self.rules.append(Rule(ns=ns, priority=PRIO_PIN_BACK + k, fwmark=k + 1, table=back_table))
                zones.append(f'"{a["sdev"]}" : {k + 1}')
                marks.append(f'"{a["sdev"]}" : {k + 1}')
            sdevs = ", ".join(f'"{a["sdev"]}"' for a in pin["apps"])
            fdevs = ", ".join(f'"{a["fdev"]}"' for a in pin["apps"])
            self.nft.append(NftTable(ns=ns, family="ip", name="vlpin", text="\n".join([
                "  chain appzone {", "    type filter hook prerouting priority raw; policy accept;",
                f"    ct original zone set iifname map {{ {', '.join(zones)} }}", "  }",
                "  chain appmark {", "    type filter hook prerouting priority mangle; policy accept;",
                f"    ct direction original ct mark set iifname map {{ {', '.join(marks)} }}",
                "    ct direction reply meta mark set ct mark", "  }",
                "  chain post {", "    type nat hook postrouting priority srcnat; policy accept;",
                f"    oifname {{ {fdevs} }} snat to {pin['ip']}", "  }",
                "  chain fw {", "    type filter hook forward priority filter; policy drop;",
                "    ct state established,related accept", f"    iifname {{ {sdevs} }} accept", "  }",
                "  chain inp {", "    type filter hook input priority filter; policy accept;",
                "    ct state established,related accept", f"    iifname {{ {fdevs} }} drop", "  }",
                ttl_preserve_body()])))

    # -- NVAs in peered VNets -------------------------------------------------------------------
    def nva_table(self, fab: str, port: str, ip: str) -> int:
        """The fabric's table sending everything to the NVA behind ``port`` (one per NVA)."""
        tables = self.nva_tables.setdefault(fab, {})
        if port not in tables:
            tables[port] = NVA_TABLE_BASE + len(tables)
            self.route(fab, "default", via=ip, dev=port, table=tables[port], onlink=True)
        return tables[port]

    def _appliance_links(self) -> None:
        """A route whose next hop is an NVA in a peered VNet (the engine's ``_holder_of``) goes
        over an *appliance link*: a veth between the two fabrics dedicated to that NVA, whose
        far end is policy-routed to the NVA's port. (A peering link cannot carry it: the
        packet's destination is not the NVA, and the far fabric would deliver it by destination.)
        Created when the engine would let the packet cross (virtual network access both ways)
        and a VM holds the NIC; otherwise the route stays a blackhole, as the engine drops it."""
        net = self.net
        self.alinks: dict[tuple[str, str], dict] = {}
        for _sref, view in sorted(net.subnets.items()):
            for r in view.routes:
                if r.state != "Active" or r.next_hop_type != "VirtualAppliance":
                    continue
                nva, where = _holder_of(net, view, IPv4Address(r.next_hop_ip))
                src = view.vnet.name.lower()
                if nva is None or where.name.lower() == src or (src, nva.name.lower()) in self.alinks:
                    continue
                dst = where.name.lower()
                fab, rfab = self.fabric_of[src], self.fabric_of[dst]
                nva_port = "n" + _h(nva.name)
                if f"{nva_port}@{rfab}" not in self.ports:
                    continue  # no VM holds the NIC
                if not net.peering_open(src, dst):
                    continue
                dev, rdev = "a" + _h(nva.name), "a" + _h(src, nva.name)
                _, r_m = self.veth(fab, dev, rfab, rdev, alias=f"{where.name} NVA {nva.name} for {view.vnet.name}")
                self.neigh.append(Neighbour(ns=fab, dev=dev, ip=nva.private_ip_address, mac=r_m))
                table = self.nva_table(rfab, nva_port, nva.private_ip_address)
                n = self.alink_rules.setdefault(rfab, [])
                self.rules.append(Rule(ns=rfab, priority=PRIO_ALINK + len(n), iif=rdev, table=table))
                n.append(rdev)
                self.alinks[(src, nva.name.lower())] = {"dev": dev, "rdev": rdev, "src": src, "dst": dst,
                                                        "fab": fab, "rfab": rfab}

    # -- internet ------------------------------------------------------------------------------
    def _internet(self) -> None:
        net, topo = self.net, self.topo
        inet = self.inet
        self.route(inet, "default", type="blackhole")
        for h in topo.internet_hosts:
            ns = self.add_ns(self.nsname("host", h.name))
            self.names.endpoints[h.name.lower()] = ns
            dev = "h" + _h(h.name)
            hm, im = self.veth(ns, "eth0", inet, dev, alias=f"internet host {h.name}")
            self.addresses.append(Address(ns=ns, dev="eth0", cidr=f"{h.ip}/32"))
            self.route(ns, "default", via=LINK_GW, dev="eth0", onlink=True)
            self.neigh.append(Neighbour(ns=ns, dev="eth0", ip=LINK_GW, mac=im))
            self.neigh.append(Neighbour(ns=inet, dev=dev, ip=h.ip, mac=hm))
            self.route(inet, f"{h.ip}/32", dev=dev)
            tcp = [s.port for s in h.services if s.protocol == "Tcp"]
            udp = [s.port for s in h.services if s.protocol == "Udp"]
            if tcp or udp:
                self.procs.append(processes.responder(ns, h.name, tcp, udp))
        # public outbound addresses: back to whoever SNATs to them
        for (kind, name), ip in sorted(net.outbound.items(), key=lambda kv: str(kv[1])):
            if kind == "network_interfaces":
                nic = topo.find("network_interfaces", name)
                fab = self.fabric_of.get(nic.subnet.split("/")[0].lower()) if nic else None
                if fab is None:
                    continue
                vnet_name = nic.subnet.split("/")[0]
                self.route(inet, f"{ip}/32", via=LINK_GW, dev="f" + _h(vnet_name), onlink=True)
            else:
                fab = self.app_public_via.get(str(ip))
                if fab is not None:
                    vname = next(k for k, v in self.fabric_of.items() if v == fab)
                    self.route(inet, f"{ip}/32", via=LINK_GW, dev="f" + _h(vname), onlink=True)
                else:
                    self.route(inet, f"{ip}/32", via=LINK_GW, dev="aso", onlink=True)
        private = ", ".join(str(n) for n in PRIVATE_RANGES)
        self.nft.append(NftTable(ns=inet, family="ip", name="vlinet", text="\n".join([
            f"  set private {{ type ipv4_addr; flags interval; elements = {{ {private} }} }}",
            "  chain fw {", "    type filter hook forward priority filter; policy accept;",
            "    ip daddr @private drop", "  }"])))
        snat = getattr(self, "aso_snat", [])
        lines = ["  chain post {", "    type nat hook postrouting priority srcnat; policy accept;"]
        if snat:
            m = ", ".join(f'"{d}" : {ip}' for d, ip in snat)
            lines.append(f'    oifname "inet" snat to iifname map {{ {m} }}')
        lines += ["  }", "  chain fw {", "    type filter hook forward priority filter; policy accept;",
                  "    ct state established,related accept", '    iifname "inet" drop', "  }"]
        self.nft.append(NftTable(ns=self.aso, family="ip", name="vlaso", text="\n".join(lines)))

    # -- fabric routing + nft --------------------------------------------------------------------
    def _fabric_nft(self, vnet) -> None:
        net, topo = self.net, self.topo
        fab = self.fabric_of[vnet.name.lower()]
        ports = [p for p in self.ports.values() if p["fab"] == fab]
        ports.sort(key=lambda p: p["port"])
        peers = self.net.peers[vnet.name.lower()]
        # delivery: every host port of this VNet (for an address shared by several apps of a
        # plan instance, the port that owns it)
        receiving = [p for p in ports if p.get("owner", True)]
        for p in receiving:
            self.route(fab, f"{p['ip']}/32", dev=p["port"], table=DELIVER_TABLE)
        # subnet tables: the engine's Active effective routes
        for sref, view in sorted(net.subnets.items()):
            if view.vnet.name.lower() != vnet.name.lower():
                continue
            table = self.subnet_table[sref]
            for p in receiving:  # hosts the engine routes VnetLocal from this subnet
                r = view.lookup.lookup(IPv4Address(p["ip"]))
                if r is not None and r.next_hop_type == "VnetLocal":
                    self.route(fab, f"{p['ip']}/32", dev=p["port"], table=table)
            for r in view.routes:
                if r.state != "Active":
                    continue
                kind = r.next_hop_type
                if kind == "Internet":
                    self.route(fab, r.address_prefix, via=LINK_GW, dev="inet", table=table, onlink=True)
                elif kind == "VNetPeering":
                    remote, _ = peers[r.remote_virtual_network.lower()]
                    if net.peering_open(vnet.name, remote.name):
                        self.route(fab, r.address_prefix, via=LINK_GW, dev="p" + _h(remote.name), table=table,
                                   onlink=True)
                    else:
                        self.route(fab, r.address_prefix, table=table, type="blackhole")
                elif kind == "VirtualAppliance":
                    nva, where = _holder_of(net, view, IPv4Address(r.next_hop_ip))
                    port = "n" + _h(nva.name) if nva is not None else None
                    link = self.alinks.get((vnet.name.lower(), nva.name.lower())) if nva is not None else None
                    if nva is not None and where.name.lower() == vnet.name.lower() and f"{port}@{fab}" in self.ports:
                        self.route(fab, r.address_prefix, via=r.next_hop_ip, dev=port, table=table, onlink=True)
                    elif link is not None:  # the NVA is in a peered VNet
                        self.route(fab, r.address_prefix, via=r.next_hop_ip, dev=link["dev"], table=table,
                                   onlink=True)
                    else:  # no VM behind the next hop, or the peering refuses access: dropped
                        self.route(fab, r.address_prefix, table=table, type="blackhole")
                else:  # VnetLocal (hosts above), None, VirtualNetworkGateway
                    self.route(fab, r.address_prefix, table=table, type="blackhole")
        for i, p in enumerate(ports):
            self.rules.append(Rule(ns=fab, priority=PRIO_PORT + i, iif=p["port"],
                                   table=self.subnet_table[p["subnet"].lower()]))
        apps = [p for p in ports if p.get("app")]
        for i, p in enumerate(p for p in apps if p["owner"]):
            # the fabric's own resets for TCP to an integration address leave by the integration
            # subnet's routes, as the engine's return path does
            self.rules.append(Rule(ns=fab, priority=PRIO_APP_RST + i, iif="lo", from_=f"{p['ip']}/32",
                                   table=self.subnet_table[p["subnet"].lower()]))
        # nft
        vnet_set = net.vnet_tag(vnet)
        private = ", ".join(str(n) for n in PRIVATE_RANGES)
        vnet_elems = ", ".join(_cidrs(vnet_set.local_nets))  # for Internet: outside the VNet and peers
        body = [f"  set private {{ type ipv4_addr; flags interval; elements = {{ {private} }} }}",
                f"  set vnet {{ type ipv4_addr; flags interval; elements = {{ {vnet_elems} }} }}"]
        chains: dict[str, list[str]] = {}
        nsg_chain: dict[tuple[str, str], str] = {}

        def nsg(name: str | None, direction: str) -> str | None:
            compiled = net.nsg(name, direction, vnet)
            if compiled is None:
                return None
            key = (compiled.nsg.name.lower(), direction)
            if key not in nsg_chain:
                cname = f"nsg_{_h(compiled.nsg.name, n=6)}_{'in' if direction == 'Inbound' else 'out'}"
                nsg_chain[key] = cname
                chains[cname] = _compile_nsg(compiled)
            return nsg_chain[key]

        out_map, in_map = [], []
        for p in ports:
            view = net.subnet_view(p["subnet"])
            sub_nsg = view.subnet.network_security_group
            nic = p["nic"]
            outs = [nsg(nic.network_security_group, "Outbound") if nic else None, nsg(sub_nsg, "Outbound")]
            outs = [c for c in outs if c]
            if outs:
                chains["o_" + p["port"]] = [f"    jump {c}" for c in outs]
                out_map.append(f'"{p["port"]}" : jump o_{p["port"]}')
            if p.get("app"):
                # VNet integration is outbound only: a new TCP connection to the integration
                # address is answered with a reset (from that address), anything else dropped
                chains["i_" + p["port"]] = ["    meta l4proto tcp reject with tcp reset", "    drop"]
                in_map.append(f'"{p["port"]}" : jump i_{p["port"]}')
            if nic is not None:
                ins = [] if nic.enable_ip_forwarding else [f"    ip daddr != {p['ip']} drop"]
                ins += [f"    jump {c}" for c in (nsg(sub_nsg, "Inbound"), nsg(nic.network_security_group, "Inbound"))
                        if c]
                if ins:
                    chains["i_" + p["port"]] = ins
                    in_map.append(f'"{p["port"]}" : jump i_{p["port"]}')
        for cname, lines in chains.items():
            body.append(f"  chain {cname} {{\n" + "\n".join(lines) + "\n  }")
        # Forwarded traffic (the engine's ``_cross_peering``/return path): what arrives from a
        # peered VNet S but did not originate in S is dropped unless this VNet's peering to S
        # allows forwarded traffic. "Originated in S" = its source is in S's address space;
        # sources outside every VNet (internet hosts answering a flow that left through an NVA)
        # are not checked, as the engine does not walk internet return paths. Stateless, before
        # ``ct state established``: the engine checks replies too.
        lab_nets = _cidrs([(str(n.network_address), str(n.netmask))
                           for v in topo.virtual_networks for n in v.networks])
        body.append(f"  set labnets {{ type ipv4_addr; flags interval; elements = {{ {', '.join(lab_nets)} }} }}")
        fwd = []
        for _rname, (remote, _) in sorted(peers.items()):
            if not net.accepts_forwarded(vnet.name, remote.name):
                space = ", ".join(_cidrs([(str(n.network_address), str(n.netmask)) for n in remote.networks]))
                fwd.append(f'    iifname "p{_h(remote.name)}" ip saddr != {{ {space} }} ip saddr @labnets drop')
        for link in sorted(self.alinks.values(), key=lambda l: l["rdev"]):
            if link["rfab"] != fab:
                continue
            src_vnet, _ = net.peers[link["dst"]][link["src"]]
            if not net.accepts_forwarded(link["dst"], link["src"]):
                space = ", ".join(_cidrs([(str(n.network_address), str(n.netmask)) for n in src_vnet.networks]))
                fwd.append(f'    iifname "{link["rdev"]}" ip saddr != {{ {space} }} ip saddr @labnets drop')
        # A flow routed through an NVA crosses this fabric's conntrack twice. A connection refused
        # with a reset is forgotten by conntrack at the reset's first pass, so the reset's second
        # pass (on its way back from the NVA) is "invalid": let resets through (they open nothing).
        fw = fwd + ["    ct state established,related accept",
                    "    ct state invalid tcp flags & rst == rst accept", "    ct state invalid drop",
                    '    iifname "inet" drop']
        if out_map:
            fw.append(f"    iifname vmap {{ {', '.join(out_map)} }}")
        if in_map:
            fw.append(f"    oifname vmap {{ {', '.join(in_map)} }}")
        fw.append("    accept")
        body.append("  chain fw {\n    type filter hook forward priority filter; policy drop;\n" + "\n".join(fw)
                    + "\n  }")
        body.append("  chain inp {\n    type filter hook input priority filter; policy drop;\n  }")
        snat = [f'"{p["port"]}" : {net.public_ip("network_interfaces", p["nic"].name)}' for p in ports if p["nic"]]
        snat += [f'"{p["port"]}" : {p["public"]}' for p in ports if p.get("app")]
        nat = ["  chain post {", "    type nat hook postrouting priority srcnat; policy accept;"]
        # A flow an NVA (a NIC with IP forwarding) sends to the internet is SNATed to the NVA's
        # public address (the engine's ``public_src``); its replies, de-NATed to the original
        # source, go back through that NVA: the flow's conntrack mark names the NVA, a policy
        # rule on the mark sends the replies to the NVA's table.
        #
        # Such a flow crosses this fabric twice (source -> NVA, NVA -> internet) with the same
        # addresses; on the first pass conntrack already fixed "no NAT" for it. So what an NVA
        # forwards to outside the VNets gets its own conntrack entry: a conntrack zone for the
        # original direction only (its de-NATed reply direction stays in the default zone, where
        # the internet's replies find it). What it forwards inside the VNets keeps the first
        # entry, as any routed flow.
        nvas = [p for p in ports if p["nic"] is not None and p["nic"].enable_ip_forwarding]
        if nvas:
            ifs = ", ".join(f'"{p["port"]}"' for p in nvas)
            body.append("  chain nvazone {\n    type filter hook prerouting priority raw; policy accept;\n"
                        f"    iifname {{ {ifs} }} ip daddr != @labnets ct original zone set 1\n  }}")
            m = ", ".join(f'"{p["port"]}" : {hex(NVA_MARK_BASE + i)}' for i, p in enumerate(nvas))
            nat.append(f'    oifname "inet" ct mark set iifname map {{ {m} }}')
            body.append('  chain nvamark {\n    type filter hook prerouting priority mangle; policy accept;\n'
                        '    iifname "inet" meta mark set ct mark\n  }')
            for i, p in enumerate(nvas):
                self.rules.append(Rule(ns=fab, priority=PRIO_NVA_RETURN + i, iif="inet", fwmark=NVA_MARK_BASE + i,
                                       table=self.nva_table(fab, p["port"], p["ip"])))
        if snat:
            nat.append(f'    oifname "inet" snat to iifname map {{ {", ".join(snat)} }}')
        nat.append("  }")
        body += nat
        # every interface of the fabric forwards without a visible hop (its bridges hold only the
        # gateway addresses and never receive); what is delivered to the fabric itself is dropped
        # by ``inp``, so no per-packet ``fib daddr type != local`` is needed
        # web apps' traffic is the exception: the platform's hop decrements it once each way
        # (the note's ttl=63): no +1 for what comes from an app port, one more -1 for what
        # leaves on one (whatever route it took through the fabric, e.g. via an NVA)
        app_ports = [p["port"] for p in apps]
        body.append(ttl_preserve_body(except_iifnames=app_ports))
        if app_ports:
            body.append(ttl_decrement_body(app_ports))
        self.nft.append(NftTable(ns=fab, family="ip", name="vlfab", text="\n".join(body)))


def _addr_alts(s, field_: str) -> list[str]:
    """Alternatives (OR) for one side of a rule: each is an nft match (AND within)."""
    if s.any:
        return [""]
    alts = []
    if s.nets:
        alts.append(f"ip {field_} {{ {', '.join(_cidrs(s.nets))} }}")
    if s.internet:  # the engine's Internet tag: public space outside VirtualNetwork
        alts.append(f"ip {field_} != @private ip {field_} != @vnet")
    return alts


def _compile_nsg(compiled) -> list[str]:
    """One NSG in one direction -> ordered nft rules (allow = return to the caller, deny = drop)."""
    lines = []
    for r in compiled.rules:
        verdict = "return" if r.rule.access == "Allow" else "drop"
        if not ports_match(r.source_ports, None):
            continue  # the engine: a probe's ephemeral source port is not covered by this rule
        protos = {p.lower() for p in r.protocols}
        if r.destination_ports == FULL_PORTS:
            cond_l4 = f"meta l4proto {{ {', '.join(sorted(protos))} }}"
        else:
            protos -= {"icmp"}
            if not protos:
                continue
            cond_l4 = f"meta l4proto {{ {', '.join(sorted(protos))} }} th dport {{ {_ports(r.destination_ports)} }}"
        for sa in _addr_alts(r.sources, "saddr"):
            for da in _addr_alts(r.destinations, "daddr"):
                cond = " ".join(x for x in (cond_l4, sa, da) if x)
                note = re.sub(r"[^A-Za-z0-9_. -]", "", r.rule.name)[:60]
                lines.append(f'    {cond} {verdict} comment "{note} {r.rule.priority}"')
    lines.append("    drop")
    return lines


def plan(topology: Topology, lab_id: str) -> DesiredState:
    """The kernel state realizing ``topology`` (pure: no I/O)."""
    return _Builder(topology, lab_id).build()[0]


def plan_with_names(topology: Topology, lab_id: str) -> tuple[DesiredState, Names]:
    return _Builder(topology, lab_id).build()
