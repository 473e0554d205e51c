"""A picture of the lab: Graphviz DOT or Mermaid text, with a traced path drawn over it.

Only reads: the lab's model and its compiled view (:class:`~vnetlab.engine.network.Network`)
for what exists, and a trace's ``to_dict()`` for the path. It decides nothing: peering states,
integration addresses and every verdict come from the engine. The picture is built once as
plain data (:class:`Picture`: clusters, nodes, edges), then written as DOT or Mermaid; the
layout is Graphviz's ``dot`` (:func:`render` runs it for svg and png).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import textwrap
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from .engine.dns import zone_records
from .engine.network import LabView
from .engine.outbound import nat_gateway_addresses
from .engine.gateways import connection_status
from .engine.paas import PUBLIC_KINDS, SERVICES, connection_state, public_addresses
from .engine.routing import peering_state
from .model import AzureError, Topology
from .model.errors import InvalidArgumentValue
from .wording import step_detail

COLLAPSE_AT = 50          # a subnet with this many endpoints or more is drawn as one node with a count
FORMATS = ("dot", "mermaid", "svg", "png")
VERDICT_COLOR = {"Connected": "#1a7f37", "Refused": "#b35900", "TimedOut": "#cf222e", "NotResolved": "#cf222e",
                 "Denied": "#8250df"}


@dataclass
class Node:
    id: str
    lines: list[str]
    kind: str                      # subnet | vm | nic | nva | pe | endpoints | plan | app | paas | zone | nat | internet | unknown
    hops: list[int] = field(default_factory=list)   # trace steps at this node (1-based)
    decided: str | None = None     # the text of the step that decided the verdict, when it is here
    ref: str | None = None         # the resource it draws, "kind:name" (the web page asks about it)


@dataclass
class Cluster:
    id: str
    label: str
    kind: str                      # vnet | subnet | plan
    nodes: list[str] = field(default_factory=list)
    clusters: list["Cluster"] = field(default_factory=list)


@dataclass
class Edge:
    src: str                       # a node id, or a cluster id (a VNet, for peerings)
    dst: str
    label: str
    kind: str                      # integration | peering | route | privatelink | dnslink | nat | trace | return
    state: str | None = None       # a peering's state; a trace edge's verdict color key
    dropped: bool = False


@dataclass
class Picture:
    title: str
    clusters: list[Cluster] = field(default_factory=list)
    nodes: dict[str, Node] = field(default_factory=dict)
    top: list[str] = field(default_factory=list)   # nodes outside any cluster
    edges: list[Edge] = field(default_factory=list)
    keys: dict[tuple, str] = field(default_factory=dict)   # (kind, lower name) -> node or cluster id
    by_id: dict[str, Cluster] = field(default_factory=dict)
    verdict: str | None = None

    def cluster(self, cid: str) -> Cluster | None:
        return self.by_id.get(cid)

    def new_cluster(self, cid: str, label: str, kind: str) -> Cluster:
        self.by_id[cid] = cluster = Cluster(cid, label, kind)
        return cluster


class _Ids:
    """Readable, unique DOT/Mermaid identifiers from Azure names (which may hold '-', '.', '(')."""

    def __init__(self):
        self.used: set[str] = set()

    def new(self, prefix: str, name: str) -> str:
        base = f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', name)}"
        ident, n = base, 1
        while ident.lower() in self.used:
            n += 1
            ident = f"{base}_{n}"
        self.used.add(ident.lower())
        return ident


# -- the lab -----------------------------------------------------------------------------------------
def picture(net: LabView, trace: dict | None = None, legend: bool = True) -> Picture:
    """The lab as clusters, nodes and edges; with ``trace`` (a trace's ``to_dict()``), its path over it,
    and (``legend``) a box listing its steps (the web page lists them beside the picture instead)."""
    topo = net.topo
    pic = Picture(title=f"Lab {topo.name} ({topo.location})")
    ids = _Ids()
    nics_by_subnet: dict[str, list] = {}
    for nic in topo.network_interfaces:
        nics_by_subnet.setdefault(nic.subnet.lower(), []).append(nic)
    for vnet in topo.virtual_networks:
        pic.clusters.append(_vnet_cluster(pic, ids, topo, vnet, nics_by_subnet))
    for plan in topo.app_service_plans:
        pic.clusters.append(_plan_cluster(pic, ids, net, plan))
    _internet(pic, ids, topo)
    _paas(pic, ids, net)
    _nat_gateways(pic, ids, topo)
    _vpn(pic, ids, topo)
    _private_dns_zones(pic, ids, topo)
    _peerings(pic, topo)
    _appliance_routes(pic, net)
    if trace is not None:
        _draw_trace(pic, ids, trace, legend)
    return pic


def _add(pic: Picture, node: Node, where: list[str], *keys: tuple) -> str:
    pic.nodes[node.id] = node
    where.append(node.id)
    for key in keys:
        pic.keys.setdefault(key, node.id)
    return node.id


def _vnet_cluster(pic: Picture, ids: _Ids, topo: Topology, vnet, nics_by_subnet: dict) -> Cluster:
    cluster = pic.new_cluster(ids.new("cluster_vnet", vnet.name), f"VNet {vnet.name}  {', '.join(vnet.address_space)}", "vnet")
    pic.keys[("vnet", vnet.name.lower())] = cluster.id
    for sn in vnet.subnets:
        ref = f"{vnet.name}/{sn.name}"
        inner = pic.new_cluster(ids.new("cluster_subnet", ref), f"subnet {sn.name}  {sn.address_prefix}", "subnet")
        _add(pic, Node(ids.new("subnet", ref), _subnet_lines(sn), "subnet", ref=f"subnet:{ref}"), inner.nodes,
             ("subnet", ref.lower()))
        _endpoints(pic, ids, topo, nics_by_subnet.get(ref.lower(), []), inner)
        cluster.clusters.append(inner)
    if not vnet.subnets:
        _add(pic, Node(ids.new("vnet", vnet.name), ["no subnets"], "subnet"), cluster.nodes)
    return cluster


def _subnet_lines(sn) -> list[str]:
    lines = [f"{sn.name} {sn.address_prefix}"]
    lines += [f"delegated to {d.service_name}" for d in sn.delegations]
    if sn.network_security_group:
        lines.append(f"NSG {sn.network_security_group}")
    if sn.route_table:
        lines.append(f"route table {sn.route_table}")
    if sn.default_outbound_access is False:
        lines.append("private subnet (no default outbound access)")
    return lines


def _endpoints(pic: Picture, ids: _Ids, topo: Topology, nics: list, inner: Cluster) -> None:
    """A node per VM or bare NIC, NVAs (IP forwarding on) always; 50+ others become one node."""
    appliances = [n for n in nics if n.enable_ip_forwarding]
    others = [n for n in nics if not n.enable_ip_forwarding]
    collapsed = len(nics) >= COLLAPSE_AT
    if collapsed and others:
        ips = sorted((n.private_ip_address for n in others if n.private_ip_address), key=_ip_key)
        span = [f"{ips[0]} ... {ips[-1]}"] if ips else []
        node = Node(ids.new("endpoints", inner.id), [f"{len(others)} endpoints (VMs and NICs)", *span], "endpoints")
        _add(pic, node, inner.nodes)
        for nic in others:
            _key_endpoint(pic, topo, nic, node.id)
    for nic in appliances + ([] if collapsed else others):
        if nic.private_endpoint:
            _private_endpoint(pic, ids, topo, nic, inner)
            continue
        vm = topo.vm_of_nic(nic.name)
        name = vm.name if vm else nic.name
        lines = [f"{'NVA' if nic.enable_ip_forwarding else 'VM' if vm else 'NIC'} {name}",
                 f"{nic.name} {', '.join(nic.addresses) or '(no address)'}"]  # every IP configuration's
        if nic.enable_ip_forwarding:
            lines.append("IP forwarding")
        if nic.network_security_group:
            lines.append(f"NSG {nic.network_security_group} (NIC)")
        if vm and vm.services:
            lines.append("listens " + ", ".join(f"{s.protocol.lower()}/{s.port}" for s in vm.services))
        kind = "nva" if nic.enable_ip_forwarding else "vm" if vm else "nic"
        _add(pic, Node(ids.new(kind, name), lines, kind, ref=f"nic:{nic.name}"), inner.nodes)
        _key_endpoint(pic, topo, nic, inner.nodes[-1])


def _private_endpoint(pic: Picture, ids: _Ids, topo: Topology, nic, inner: Cluster) -> None:
    pe = topo.find("private_endpoints", nic.private_endpoint)
    lines = [f"private endpoint {nic.private_endpoint}", f"{nic.name} {nic.private_ip_address or '(no address)'}"]
    if pe is not None:
        lines.append(f"{pe.target} ({pe.group_id}): {connection_state(pe)}")
    node = Node(ids.new("pe", nic.private_endpoint), lines, "pe", ref=f"nic:{nic.name}")
    _add(pic, node, inner.nodes, ("pe", nic.private_endpoint.lower()))
    _key_endpoint(pic, topo, nic, node.id)


def _key_endpoint(pic: Picture, topo: Topology, nic, node_id: str) -> None:
    pic.keys.setdefault(("nic", nic.name.lower()), node_id)
    vm = topo.vm_of_nic(nic.name)
    if vm is not None:
        pic.keys.setdefault(("vm", vm.name.lower()), node_id)


def _ip_key(ip: str) -> tuple:
    return tuple(int(p) for p in ip.split("."))


def _plan_cluster(pic: Picture, ids: _Ids, net: LabView, plan) -> Cluster:
    cluster = pic.new_cluster(ids.new("cluster_plan", plan.name),
                      f"App Service plan {plan.name}  {plan.sku} {plan.os} x{plan.instances}", "plan")
    pic.keys[("plan", plan.name.lower())] = cluster.id
    apps = [a for a in net.topo.web_apps if a.plan.lower() == plan.name.lower()]
    for app in apps:
        lines = [f"web app {app.name}"]
        if app.route_all:
            lines.append("Route All on")
        app_id = _add(pic, Node(ids.new("app", app.name), lines, "app", ref=f"app:{app.name}"), cluster.nodes,
                      ("app", app.name.lower()))
        if app.vnet_integration:
            addresses = net.integration.get((app.plan.lower(), app.vnet_integration.lower()), [])
            target = pic.keys.get(("subnet", app.vnet_integration.lower()))
            if target is not None:
                label = "VNet integration " + ", ".join(str(ip) for ip in addresses)
                pic.edges.append(Edge(app_id, target, label.strip(), "integration"))
    if not apps:
        _add(pic, Node(ids.new("plan", plan.name), ["no web apps"], "plan"), cluster.nodes)
    return cluster


def _internet(pic: Picture, ids: _Ids, topo: Topology) -> None:
    lines = ["Internet"] + [f"{h.name} {h.ip}" for h in topo.internet_hosts]
    _add(pic, Node(ids.new("internet", "edge"), lines, "internet"), pic.top, ("internet", ""))
    for h in topo.internet_hosts:
        pic.keys.setdefault(("host", h.name.lower()), pic.top[-1])


def _paas(pic: Picture, ids: _Ids, net: LabView) -> None:
    """A node per storage account, SQL server and key vault at its public address, and an edge from
    each of its private endpoints (the addresses are the engine's: engine.paas)."""
    topo = net.topo
    if not any(getattr(topo, kind) for kind in PUBLIC_KINDS):
        return
    cluster = pic.new_cluster(ids.new("cluster_paas", "paas"), "PaaS services (public endpoints)", "paas")
    public = public_addresses(topo)
    for kind in PUBLIC_KINDS:
        for res in getattr(topo, kind):
            lines = [f"{SERVICES[kind].label} {res.name}", str(public.get((kind, res.name.lower()), ""))]
            lines.append(f"public network access {res.public_network_access or 'Enabled'}")
            _add(pic, Node(ids.new("paas", res.name), lines, "paas", ref=f"{kind}:{res.name}"), cluster.nodes,
                 ("paas", res.name.lower()))
    pic.clusters.append(cluster)
    for pe in topo.private_endpoints:
        src, dst = pic.keys.get(("pe", pe.name.lower())), pic.keys.get(("paas", (pe.target or "").lower()))
        if src and dst:
            pic.edges.append(Edge(src, dst, f"private link {pe.group_id}: {connection_state(pe)}", "privatelink"))


def _nat_gateways(pic: Picture, ids: _Ids, topo: Topology) -> None:
    """A node per NAT gateway with its public addresses (engine.outbound), an edge from each subnet it serves."""
    for nat in topo.nat_gateways:
        addresses = ", ".join(str(ip) for ip in nat_gateway_addresses(topo, nat))
        node = _add(pic, Node(ids.new("nat", nat.name), [f"NAT gateway {nat.name}", addresses or "(no addresses)"],
                              "nat", ref=f"nat_gateways:{nat.name}"), pic.top, ("nat", nat.name.lower()))
        for vnet in topo.virtual_networks:
            for sn in vnet.subnets:
                src = pic.keys.get(("subnet", f"{vnet.name}/{sn.name}".lower()))
                if src and (sn.nat_gateway or "").lower() == nat.name.lower():
                    pic.edges.append(Edge(src, node, "outbound via NAT gateway", "nat"))


def _vpn(pic: Picture, ids: _Ids, topo: Topology) -> None:
    """A node per VPN gateway (an edge from its VNet), a node per on-premises site with its hosts, an edge
    per connection with its status (engine.gateways)."""
    for gw in topo.virtual_network_gateways:
        node = _add(pic, Node(ids.new("gw", gw.name), [f"VPN gateway {gw.name}", f"{gw.sku}, {gw.vpn_type}"],
                              "gateway", ref=f"virtual_network_gateways:{gw.name}"), pic.top,
                    ("gateway", gw.name.lower()))
        vnet = pic.keys.get(("vnet", gw.virtual_network.lower()))
        if vnet is not None:
            pic.edges.append(Edge(vnet, node, "GatewaySubnet", "nat"))
    for site in topo.on_premises_sites:
        lng = topo.find("local_network_gateways", site.local_network_gateway)
        lines = [f"on-premises site {site.name}", ", ".join(lng.address_prefixes) if lng else "(no local gateway)"]
        lines += [f"{h.name} {h.ip}" for h in site.hosts]
        node = _add(pic, Node(ids.new("site", site.name), lines, "site"), pic.top, ("site", site.name.lower()),
                    *(("onprem", h.name.lower()) for h in site.hosts))
        for conn in topo.connections:
            gw = pic.keys.get(("gateway", conn.virtual_network_gateway.lower()))
            if gw is not None and conn.local_network_gateway.lower() == site.local_network_gateway.lower():
                pic.edges.append(Edge(gw, node, f"IPsec {conn.name}: {connection_status(topo, conn)}", "nat"))


def _private_dns_zones(pic: Picture, ids: _Ids, topo: Topology) -> None:
    """A node per private DNS zone, an edge to each VNet it is linked to."""
    for zone in topo.private_dns_zones:
        node = _add(pic, Node(ids.new("zone", zone.name), [f"private DNS zone {zone.name}",
                                                           f"{len(zone_records(topo, zone))} record sets"], "zone",
                              ref=f"private_dns_zones:{zone.name}"), pic.top, ("zone", zone.name.lower()))
        for link in zone.virtual_network_links:
            vnet = pic.keys.get(("vnet", link.virtual_network.rsplit("/", 1)[-1].lower()))
            if vnet is not None:
                label = f"link {link.name}" + (" (registration)" if link.registration_enabled else "")
                pic.edges.append(Edge(node, vnet, label, "dnslink"))


def _peerings(pic: Picture, topo: Topology) -> None:
    """One edge per pair of peered VNets: both directions Connected, or each direction with its state."""
    seen: set[frozenset] = set()
    for vnet in topo.virtual_networks:
        for p in vnet.peerings:
            a, b = vnet.name.lower(), p.remote_virtual_network.lower()
            if frozenset((a, b)) in seen or ("vnet", b) not in pic.keys:
                continue
            state = peering_state(topo, vnet, p)
            if state == "Connected":
                seen.add(frozenset((a, b)))
            pic.edges.append(Edge(pic.keys[("vnet", a)], pic.keys[("vnet", b)], f"peering {p.name}: {state}",
                                  "peering", state))


def _appliance_routes(pic: Picture, net: LabView) -> None:
    """A subnet's user-defined routes to a virtual appliance, drawn to the NIC the engine says holds
    the next hop (in the subnet's VNet or a connected peer)."""
    tables = {rt.name.lower(): rt for rt in net.topo.route_tables}
    for vnet in net.topo.virtual_networks:
        for sn in vnet.subnets:
            rt = tables.get((sn.route_table or "").lower())
            ref = f"{vnet.name}/{sn.name}"
            src = pic.keys.get(("subnet", ref.lower()))
            for route in rt.routes if rt and src else []:
                if route.next_hop_type != "VirtualAppliance" or not route.next_hop_ip_address:
                    continue
                nic, _ = net.appliance_at(net.subnet_view(ref), IPv4Address(route.next_hop_ip_address))
                if nic is not None:
                    pic.edges.append(Edge(src, pic.keys[("nic", nic.name.lower())],
                                          f"UDR {route.name} {route.address_prefix}", "route"))


# -- the trace ----------------------------------------------------------------------------------------
def step_text(step: dict) -> str:
    return f"{step['kind']} {step['action']}: {step_detail(step)}"


def _step_key(step: dict) -> tuple | None:
    """Where in the picture a step happens, as a key of ``Picture.keys`` (None: where the packet is)."""
    kind = step["kind"]
    if kind == "KernelRoute":
        return ("app", step["sandbox"].lower())
    if kind == "Route":
        return ("subnet", step["subnet"].lower())
    if kind == "NetworkSecurityGroup":
        where, _, name = step["attached_to"].partition(" ")
        if where == "subnet":
            return ("subnet", name.lower())
        return ("nic", step["attached_to"].removeprefix("network interface ").lower())
    if kind == "VNetPeering":
        return ("vnet", step["to_vnet"].lower())
    if kind == "VirtualAppliance":
        return ("nic", step["network_interface"].lower())
    if kind == "Internet":
        return ("internet", "")
    if kind == "VirtualNetworkGateway":
        return ("gateway", step["gateway"].lower())
    if kind == "Deliver":
        if step.get("on_premises_site"):
            return ("site", step["on_premises_site"].lower())
        if step.get("virtual_machine"):
            return ("vm", step["virtual_machine"].lower())
        if step.get("web_app"):
            return ("app", step["web_app"].lower())
        if step.get("internet") or step.get("host"):
            return ("internet", "")
        return ("ip", step["ip"])
    if kind == "Admission":  # a PaaS service: its public node, or at its private endpoint (where the packet is)
        return ("paas", step["resource"].lower()) if step["endpoint"] == "public" else None
    if kind == "SNAT" and step.get("resource_id"):
        m = re.search(r"/virtualNetworks/([^/]+)/subnets/([^/]+)$", step["resource_id"])
        return ("subnet", f"{m.group(1)}/{m.group(2)}".lower()) if m else None
    return None


def _source_key(flow: dict) -> tuple:
    kind = {"webapp": "app", "vm": "vm", "nic": "nic", "onprem": "onprem"}.get(flow["source_kind"])
    return (kind, flow["source"].lower()) if kind else ("internet", "")


def _node_at(pic: Picture, ids: _Ids, key: tuple | None, current: str) -> str:
    if key is None:
        return current
    target = pic.keys.get(key)
    if target is None and key[0] == "ip":   # nobody holds the address: a node saying so
        target = _add(pic, Node(ids.new("nohost", key[1]), [key[1], "no host"], "unknown"), pic.top, key)
    if target is None:
        return current
    cluster = pic.cluster(target)
    if cluster is not None:  # a VNet (a peering step): the packet is in the VNet, drawn at its first node
        target = _first_node(cluster) or current
    return target


def _first_node(cluster: Cluster) -> str | None:
    if cluster.nodes:
        return cluster.nodes[0]
    return next((n for c in cluster.clusters if (n := _first_node(c))), None)


def decisive_step(trace: dict) -> tuple[str, int] | None:
    """("steps" or "return_path", index) of the step that decided the verdict: the dropped one, else the
    last step of the forward path."""
    for part in ("steps", "return_path"):
        for i, step in enumerate(trace.get(part) or []):
            if step["dropped"]:
                return part, i
    return ("steps", len(trace["steps"]) - 1) if trace["steps"] else None


def _draw_trace(pic: Picture, ids: _Ids, trace: dict, legend: bool) -> None:
    flow = trace["flow"]
    port = f"/{flow['port']}" if flow.get("port") else ""
    seen = f", source seen {trace['source_ip_seen']}" if trace.get("source_ip_seen") else ""
    pic.verdict = trace["verdict"]
    pic.title += (f"\nTrace {flow['source']} -> {flow['destination']} ({flow['destination_ip'] or 'not resolved'}) "
                  f"{flow['protocol']}{port}: {trace['verdict']} ({trace['reason']}: {trace['explanation']}){seen}")
    decided = decisive_step(trace)
    steps = [*(trace.get("steps") or []), *(trace.get("return_path") or [])]
    if legend:
        _add(pic, Node("trace_steps", [f"{i}. {step_text(s)}" for i, s in enumerate(steps, 1)], "legend"), pic.top)
    current = _node_at(pic, ids, _source_key(flow), pic.top[0])
    number = 0
    for part, kind in (("steps", "trace"), ("return_path", "return")):
        for i, step in enumerate(trace.get(part) or []):
            number += 1
            target = _node_at(pic, ids, _step_key(step), current)
            if target != current:
                pic.edges.append(Edge(current, target, f"{number}. {step['kind']}", kind, trace["verdict"],
                                      step["dropped"]))
            node = pic.nodes[target]
            node.hops.append(number)
            if decided == (part, i):
                node.decided = f"{number}. {step_text(step)}"
            current = target


# -- writing ------------------------------------------------------------------------------------------
_NODE_STYLE = {
    "subnet": 'shape=note, style=filled, fillcolor="#eef3fb"',
    "vm": 'shape=box, style="rounded,filled", fillcolor="#ffffff"',
    "nic": 'shape=box, style="rounded,dashed"',
    "nva": 'shape=hexagon, style=filled, fillcolor="#fff4d6"',
    "endpoints": 'shape=box3d, style=filled, fillcolor="#f6f8fa"',
    "plan": "shape=plaintext",
    "app": 'shape=component, style=filled, fillcolor="#e8f5e9"',
    "internet": 'shape=ellipse, style=filled, fillcolor="#f0f0ff"',
    "pe": 'shape=box, style="rounded,filled", fillcolor="#eef6ff"',
    "paas": 'shape=cylinder, style=filled, fillcolor="#f3eefc"',
    "zone": 'shape=note, style=filled, fillcolor="#fdf6e3"',
    "nat": 'shape=trapezium, style=filled, fillcolor="#eefbf3"',
    "gateway": 'shape=invhouse, style=filled, fillcolor="#eefbf3"',
    "site": 'shape=box3d, style=filled, fillcolor="#fff0f0"',
    "unknown": 'shape=octagon, style=dashed',
    "legend": 'shape=box, style="filled", fillcolor="#fffbe6", fontname=Courier',
}
_CLUSTER_STYLE = {"vnet": 'style="rounded,filled"; fillcolor="#f7faff"; color="#0969da"',
                  "subnet": 'style="rounded"; color="#8c959f"',
                  "plan": 'style="rounded,filled"; fillcolor="#f6fff6"; color="#1a7f37"',
                  "paas": 'style="rounded,filled"; fillcolor="#fbf8ff"; color="#8250df"'}


def _dq(text: str, left: bool = False) -> str:
    """A DOT double-quoted string; lines joined with DOT's centered (``left``: left-justified) line break."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + (escaped.replace("\n", "\\l") + "\\l" if left else escaped.replace("\n", "\\n")) + '"'


def node_lines(node: Node) -> list[str]:
    lines = list(node.lines)
    if node.hops:
        lines.append("trace step " + ", ".join(map(str, node.hops)))
    if node.decided:  # wrapped: one long line would widen the whole picture
        lines += textwrap.wrap("decided: " + node.decided, 48, break_on_hyphens=False)
    return lines


def to_dot(pic: Picture) -> str:
    out = ["digraph vnetlab {", "  compound=true; rankdir=TB; newrank=true;",
           f"  label={_dq(pic.title)}; labelloc=t; fontname=Helvetica;",
           '  node [fontname=Helvetica, fontsize=10]; edge [fontname=Helvetica, fontsize=9];']
    for cluster in pic.clusters:
        _dot_cluster(pic, cluster, out, "  ")
    for nid in pic.top:
        out.append("  " + _dot_node(pic.nodes[nid]))
    for edge in pic.edges:
        out.append("  " + _dot_edge(pic, edge))
    out.append("}")
    return "\n".join(out) + "\n"


def _dot_cluster(pic: Picture, cluster: Cluster, out: list[str], pad: str) -> None:
    out.append(f"{pad}subgraph {cluster.id} {{")
    out.append(f"{pad}  label={_dq(cluster.label)}; {_CLUSTER_STYLE[cluster.kind]};")
    for nid in cluster.nodes:
        out.append(pad + "  " + _dot_node(pic.nodes[nid]))
    for inner in cluster.clusters:
        _dot_cluster(pic, inner, out, pad + "  ")
    out.append(pad + "}")


def _decided_class(node: Node) -> str | None:
    """answered (the destination answered) or decided (the step that stopped the flow)."""
    if not node.decided:
        return None
    return "answered" if " Answered:" in node.decided else "decided"


def _dot_node(node: Node) -> str:
    style = _NODE_STYLE[node.kind]
    if node.decided:
        color = "#1a7f37" if _decided_class(node) == "answered" else "#cf222e"
        style += f', penwidth=3, color="{color}"'
    elif node.hops:
        style += ', penwidth=2, color="#0969da"'
    ref = f", id={_dq('ref:' + node.ref)}" if node.ref else ""
    return f"{node.id} [label={_dq(chr(10).join(node_lines(node)), node.kind == 'legend')}, {style}{ref}];"


def _dot_edge(pic: Picture, edge: Edge) -> str:
    src, dst, attrs = edge.src, edge.dst, [f"label={_dq(edge.label)}"]
    for end, attr in ((src, "ltail"), (dst, "lhead")):
        cluster = pic.cluster(end)
        if cluster is not None:
            attrs.append(f"{attr}={cluster.id}")
    src = _first_node(pic.cluster(src)) if pic.cluster(src) else src
    dst = _first_node(pic.cluster(dst)) if pic.cluster(dst) else dst
    if edge.kind == "integration":
        attrs.append('color="#1a7f37", penwidth=1.5')
    elif edge.kind == "peering":
        attrs.append("dir=both" if edge.state == "Connected" else 'style=dashed, color="#b35900"')
    elif edge.kind == "route":
        attrs.append('style=dashed, color="#6e7781"')
    elif edge.kind == "privatelink":
        attrs.append('color="#8250df"')
    elif edge.kind == "nat":
        attrs.append('color="#1a7f37", style=dashed')
    elif edge.kind == "dnslink":
        attrs.append('style=dotted, color="#9a6700"')
    else:
        color = "#cf222e" if edge.dropped else VERDICT_COLOR.get(edge.state or "", "#0969da")
        attrs.append(f'color="{color}", fontcolor="{color}", penwidth=2.5'
                     + (", style=dashed" if edge.kind == "return" else ""))
    return f"{src} -> {dst} [{', '.join(attrs)}];"


def _mq(text: str) -> str:
    """A Mermaid quoted label: quotes as entities, lines as <br/>."""
    return '"' + text.replace('"', "#quot;").replace("\n", "<br/>") + '"'


def to_mermaid(pic: Picture) -> str:
    out = ["---", f"title: {pic.title.splitlines()[0]}", "---", "flowchart LR"]
    for cluster in pic.clusters:
        _mermaid_cluster(pic, cluster, out, "  ")
    for nid in pic.top:
        out.append("  " + _mermaid_node(pic.nodes[nid]))
    styles = []
    for i, edge in enumerate(pic.edges):
        arrow = {"integration": "-->", "peering": "<-->" if edge.state == "Connected" else "-.->",
                 "route": "-.->", "privatelink": "-->", "dnslink": "-.-", "nat": "-.->", "trace": "==>", "return": "-.->"}[edge.kind]
        out.append(f"  {edge.src} {arrow}|{_mq(edge.label)}| {edge.dst}")
        if edge.kind in ("trace", "return"):
            color = "#cf222e" if edge.dropped else VERDICT_COLOR.get(edge.state or "", "#0969da")
            styles.append(f"  linkStyle {i} stroke:{color},stroke-width:3px")
    out.extend(styles)
    out.append("  classDef hop stroke:#0969da,stroke-width:2px")
    out.append("  classDef decided stroke:#cf222e,stroke-width:3px")
    out.append("  classDef answered stroke:#1a7f37,stroke-width:3px")
    for node in pic.nodes.values():
        if node.decided or node.hops:
            out.append(f"  class {node.id} {_decided_class(node) or 'hop'}")
    return "\n".join(out) + "\n"


def _mermaid_cluster(pic: Picture, cluster: Cluster, out: list[str], pad: str) -> None:
    out.append(f"{pad}subgraph {cluster.id}[{_mq(cluster.label)}]")
    for nid in cluster.nodes:
        out.append(pad + "  " + _mermaid_node(pic.nodes[nid]))
    for inner in cluster.clusters:
        _mermaid_cluster(pic, inner, out, pad + "  ")
    out.append(pad + "end")


def _mermaid_node(node: Node) -> str:
    shape = {"nva": ("{{", "}}"), "internet": ("((", "))"), "app": ("[[", "]]"), "subnet": ("[/", "/]"),
             "paas": ("[(", ")]"), "zone": (">", "]")}
    left, right = shape.get(node.kind, ("[", "]"))
    return f"{node.id}{left}{_mq(chr(10).join(node_lines(node)))}{right}"


def render(dot_text: str, fmt: str) -> bytes:
    """svg or png from DOT text through Graphviz's ``dot``."""
    exe = shutil.which("dot")
    if exe is None:
        raise AzureError("Graphviz's `dot` is not installed (apt-get install graphviz): use -o dot or -o mermaid, "
                         "or install it for svg and png.", "GraphvizNotFound")
    done = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode(), capture_output=True, timeout=300)
    if done.returncode != 0:
        raise AzureError(f"dot failed: {done.stderr.decode(errors='replace').strip()}", "GraphvizFailed", 500)
    return done.stdout


def draw(net: LabView, fmt: str, trace: dict | None = None, legend: bool = True) -> bytes:
    """The lab (and ``trace``) in ``fmt``: dot, mermaid, svg or png."""
    if fmt not in FORMATS:
        raise InvalidArgumentValue(f"Unknown picture format '{fmt}': use one of {', '.join(FORMATS)}.")
    pic = picture(net, trace, legend)
    if fmt == "mermaid":
        return to_mermaid(pic).encode()
    dot_text = to_dot(pic)
    return dot_text.encode() if fmt == "dot" else render(dot_text, fmt)
