"""Network Watcher and a NIC's effective routes and security rules, answered by the engine.

- POST networkWatchers/{nw}/ipFlowVerify: the NSG verdict for one flow (access, ruleName)
- POST networkWatchers/{nw}/nextHop: the effective route for a destination
- POST networkWatchers/{nw}/connectivityCheck: a full trace (hops, issues, connectionStatus);
  the source may also be a web app (its VNet integration), which Azure's own check cannot do
- POST networkInterfaces/{nic}/effectiveRouteTable and .../effectiveNetworkSecurityGroups

Azure keeps one watcher per region in NetworkWatcherRG; here every watcher name answers, in any
resource group, so ``az network watcher`` and the SDK find one without creating it.
https://learn.microsoft.com/azure/network-watcher/network-watcher-overview
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network
from itertools import pairwise

from starlette.responses import Response

from ..model.errors import InvalidPort, InvalidTargetResourceId, NotFound
from ..engine.gateways import gateway_private_ip
from ..engine.network import LabView
from ..engine.paas import endpoint_at
from ..engine.security import (ANY_ADDRESS, flow_protocol, is_public, nsg_chain, parse_ports, service_tag,
                               tag_key, tag_map)
from ..model import NetworkInterface
from ..model.ids import parse_id
from ..model.nsg import is_default_rule
from .arm import Call, Router, bad_request, json_response, list_response, resource_response
from .discovery import LOCATIONS
from .network import NICS, NS
from .state import LabState, Obj, guid, require

# connectivityCheck's protocols: Http and Https are TCP to their default ports.
# https://learn.microsoft.com/rest/api/network-watcher/network-watchers/check-connectivity
WEB_PROTOCOLS = {"http": 80, "https": 443}


# -- the watcher resource (virtual) ------------------------------------------------------------

def watcher_doc(sub: str, rg: str, name: str, location: str) -> dict:
    rid = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{NS}/networkWatchers/{name}"
    return {"name": name, "id": rid, "type": f"{NS}/networkWatchers", "location": location,
            "properties": {"provisioningState": "Succeeded"}}


def get_watcher(state: LabState, call: Call) -> Response:
    topo = state.read()
    body = call.json() if call.method in ("PUT", "PATCH") else {}
    location = (body.get("location") if isinstance(body, dict) else None) or topo.location
    return resource_response(watcher_doc(topo.subscription_id, call.params["rg"], call.params["name"],
                                         str(location).replace(" ", "").lower()))


def list_watchers(state: LabState, call: Call) -> Response:
    topo = state.read()
    regions = sorted({topo.location} | {topo.location_of(v) for v in topo.virtual_networks})
    rg = call.params.get("rg", "NetworkWatcherRG")
    return list_response(watcher_doc(topo.subscription_id, rg, f"NetworkWatcher_{r}", r) for r in regions
                         if r in LOCATIONS)


# -- targets -----------------------------------------------------------------------------------

def _target(net: LabView, rid: str | None, path: str) -> tuple[str, str]:
    """(kind, name) of a VM, NIC or web app id."""
    parsed = parse_id(require(rid, path))
    kinds = {("microsoft.compute", "virtualmachines"): "virtual_machines",
             ("microsoft.network", "networkinterfaces"): "network_interfaces",
             ("microsoft.web", "sites"): "web_apps"}
    kind = kinds.get((parsed.namespace.lower(), parsed.types[0].lower())) if parsed and len(parsed.types) == 1 \
        else None
    if kind is None:
        raise InvalidTargetResourceId(f"Target resource id '{rid}' at '{path}' is not a virtual machine, "
                                      "network interface or web app.")
    res = net.topo.find(kind, parsed.name)
    if res is None or net.topo.rg_of(res).lower() != parsed.resource_group.lower():
        raise NotFound(f"Resource {rid} not found.")
    return kind, res.name


def _nic(net: LabView, body: Obj) -> NetworkInterface:
    rid = body.str("targetNicResourceId") or body.str("targetResourceId")
    kind, name = _target(net, rid, "targetResourceId")
    if kind == "web_apps":
        raise InvalidTargetResourceId("This operation needs a virtual machine or network interface target.")
    if kind == "virtual_machines":
        name = net.topo.find("virtual_machines", name).network_interface
    return net.topo.find("network_interfaces", name)


def _ip(value: str | None, path: str) -> IPv4Address:
    try:
        return IPv4Address(require(value, path).strip())
    except ValueError:
        raise bad_request(f"'{value}' at '{path}' is not a valid IPv4 address.", "InvalidIPAddress") from None


def _port(value: str | None, path: str) -> int | None:
    if value in (None, "", "*"):
        return None
    text = str(value).strip()
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise InvalidPort(f"'{value}' at '{path}' is not a valid port (1-65535).")
    return int(text)


def _protocol(value: str | None) -> str:
    value = value or "Tcp"
    if value.strip().lower() in WEB_PROTOCOLS:
        return "Tcp"
    return flow_protocol(value)


# -- ipFlowVerify, nextHop -----------------------------------------------------------------------

def rule_label(rule) -> str:
    return f"{'defaultSecurityRules' if is_default_rule(rule) else 'securityRules'}/{rule.name}"


def verify_ip_flow(state: LabState, call: Call) -> Response:
    """https://learn.microsoft.com/azure/network-watcher/ip-flow-verify-overview"""
    body = Obj(call.json(), "")
    net = state.network()
    nic = _nic(net, body)
    direction = (require(body.str("direction"), "direction")).capitalize()
    if direction not in ("Inbound", "Outbound"):
        raise bad_request(f"Direction '{direction}' is not Inbound or Outbound.", "InvalidDirection")
    protocol = _protocol(body.str("protocol"))
    local, remote = _ip(body.str("localIPAddress"), "localIPAddress"), _ip(body.str("remoteIPAddress"),
                                                                           "remoteIPAddress")
    local_port, remote_port = _port(body.str("localPort"), "localPort"), _port(body.str("remotePort"), "remotePort")
    if direction == "Outbound":
        src, dst, port, sport = local, remote, remote_port, local_port
    else:
        src, dst, port, sport = remote, local, local_port, remote_port
    view = net.subnet_view(nic.subnet)
    verdict: dict = {"access": "Allow"}
    for _, name in nsg_chain(direction, nic.network_security_group, view.subnet.network_security_group):
        compiled = net.nsg(name, direction, view.vnet)
        if compiled is None:
            continue
        hit = compiled.evaluate(protocol, src, dst, port, sport)
        verdict = {"access": hit.rule.access, "ruleName": rule_label(hit.rule)}
        if hit.rule.access == "Deny":
            break
    return json_response(verdict)


def next_hop(state: LabState, call: Call) -> Response:
    """https://learn.microsoft.com/azure/network-watcher/next-hop-overview"""
    body = Obj(call.json(), "")
    net = state.network()
    nic = _nic(net, body)
    dst = _ip(body.str("destinationIPAddress"), "destinationIPAddress")
    route = net.subnet_view(nic.subnet).route_for(dst)
    if route is None:
        return json_response({"nextHopType": "None", "nextHopIpAddress": "", "routeTableId": "System Route"})
    table = net.topo.find("route_tables", route.route_table) if route.source == "User" else None
    return json_response({"nextHopType": route.next_hop_type, "nextHopIpAddress": route.next_hop_ip or "",
                          "routeTableId": net.topo.id_of("route_tables", table) if table else "System Route"})


# -- effective routes and security rules of a NIC ---------------------------------------------

def _nic_of(state: LabState, call: Call) -> tuple[LabView, NetworkInterface]:
    NICS.lookup(state, call)  # 404s as a GET would
    net = state.network()
    return net, net.topo.find("network_interfaces", call.params["name"])


def effective_routes(state: LabState, call: Call) -> Response:
    """POST networkInterfaces/{nic}/effectiveRouteTable"""
    net, nic = _nic_of(state, call)
    table = net.topo.find("route_tables", net.subnet_view(nic.subnet).subnet.route_table)
    value = []
    for r in net.subnet_view(nic.subnet).routes:
        entry = {"source": r.source, "state": r.state, "addressPrefix": [r.address_prefix],
                 "nextHopIpAddress": [r.next_hop_ip] if r.next_hop_ip else [], "nextHopType": r.next_hop_type,
                 "disableBgpRoutePropagation": bool(table and table.disable_bgp_route_propagation)}
        if r.name:
            entry["name"] = r.name
        value.append(entry)
    return json_response({"value": value})


def _ranges(values: list[str]) -> list[str]:
    return [f"{lo}-{hi}" for lo, hi in parse_ports(values)]


def _expand(prefix: str, tags: dict[str, list[str]]) -> list[str]:
    if prefix.strip().lower() in ANY_ADDRESS:
        return ["0.0.0.0/0"]
    tag = service_tag(prefix)
    if tag is not None:
        return tags[tag_key(tag)]
    return [str(IPv4Network(prefix.strip(), strict=False))]


def effective_rule(rule, tags: dict[str, list[str]]) -> dict:
    sources, destinations = rule.sources(), rule.destinations()
    single = lambda values: values[0] if len(values) == 1 else None  # noqa: E731
    out = {"name": rule_label(rule),
           "protocol": "All" if rule.protocol == "*" else rule.protocol,
           "sourcePortRange": single(_ranges(rule.source_ports())),
           "destinationPortRange": single(_ranges(rule.destination_ports())),
           "sourcePortRanges": _ranges(rule.source_ports()), "destinationPortRanges": _ranges(rule.destination_ports()),
           "sourceAddressPrefix": single(["0.0.0.0/0" if s == "*" else s for s in sources]),
           "destinationAddressPrefix": single(["0.0.0.0/0" if d == "*" else d for d in destinations]),
           "sourceAddressPrefixes": [] if len(sources) == 1 else sources,
           "destinationAddressPrefixes": [] if len(destinations) == 1 else destinations,
           "expandedSourceAddressPrefix": [p for s in sources for p in _expand(s, tags)],
           "expandedDestinationAddressPrefix": [p for d in destinations for p in _expand(d, tags)],
           "access": rule.access, "priority": rule.priority, "direction": rule.direction}
    return {k: v for k, v in out.items() if v is not None}


def effective_nsgs(state: LabState, call: Call) -> Response:
    """POST networkInterfaces/{nic}/effectiveNetworkSecurityGroups, service tags expanded."""
    net, nic = _nic_of(state, call)
    topo, view = net.topo, net.subnet_view(nic.subnet)
    tags = tag_map(net.vnet_tag(view.vnet))
    value = []
    for name, association in ((view.subnet.network_security_group, {"subnet": {"id": view.id}}),
                              (nic.network_security_group,
                               {"networkInterface": {"id": topo.id_of("network_interfaces", nic)}})):
        nsg = topo.find("network_security_groups", name) if name else None
        if nsg is None:
            continue
        rules = [effective_rule(r, tags) for direction in ("Inbound", "Outbound") for r in nsg.rules(direction)]
        value.append({"networkSecurityGroup": {"id": topo.id_of("network_security_groups", nsg)},
                      "association": association, "effectiveSecurityRules": rules, "tagMap": tags})
    return json_response({"value": value})


# -- connectivityCheck ---------------------------------------------------------------------------

def _hop(kind: str, address: str | None, resource_id: str | None, issues: list | None = None) -> dict:
    return {"type": kind, "id": guid(f"{kind}/{address}/{resource_id}"), "address": address,
            "resourceId": resource_id, "nextHopIds": [], "issues": issues or []}


def _issue(step: dict, reason: str) -> dict:
    if step.get("kind") == "NetworkSecurityGroup":
        kind = "NetworkSecurityRule"
        context = [{"key": "RuleName", "value": step.get("rule")}, {"key": "NetworkSecurityGroup",
                                                                     "value": step.get("nsg")}]
    elif step.get("kind") == "Route" and step.get("source") == "User":
        kind, context = "UserDefinedRoute", [{"key": "RouteName", "value": step.get("route_name")}]
    else:
        kind, context = "Platform", [{"key": "Reason", "value": reason}]
    origin = "Inbound" if step.get("direction") == "Inbound" else "Outbound"
    return {"origin": origin, "severity": "Error", "type": kind, "context": context}


def connectivity_check(state: LabState, call: Call) -> Response:
    """https://learn.microsoft.com/azure/network-watcher/connection-troubleshoot-overview"""
    body = Obj(call.json(), "")
    net = state.network()
    source, destination = body.obj("source"), body.obj("destination")
    _, src_name = _target(net, source.str("resourceId"), "source.resourceId")
    if destination.str("resourceId"):
        _, dst = _target(net, destination.str("resourceId"), "destination.resourceId")
    else:
        dst = require(destination.str("address"), "destination.address")
    protocol_in = body.str("protocol") or "Tcp"
    protocol = _protocol(protocol_in)
    port = _port(destination.str("port"), "destination.port")
    if port is None:
        port = WEB_PROTOCOLS.get(protocol_in.strip().lower())
    trace = state.lab.trace(src_name, dst, port, protocol)
    doc = trace.to_dict()
    return json_response(connectivity_result(net, doc))


def destination_hop(net: LabView, ip_text: str) -> tuple[str, str | None]:
    """(hop type, resource id) of the address a check is sent to: the VM (or NIC) or web app
    holding it in a VNet; an address in no VNet that is public is the Internet.
    https://learn.microsoft.com/azure/network-watcher/connection-troubleshoot-overview#response"""
    ip = IPv4Address(ip_text)
    vnet = net.topo.vnet_of_ip(ip)
    service = endpoint_at(net, ip, vnet.name if vnet is not None else None)
    if service is not None:  # a PaaS resource: its public endpoint, or the private endpoint holding the address
        pe = service.private_endpoint
        rid = net.topo.id_of("private_endpoints", pe) if pe is not None else net.topo.id_of(service.kind,
                                                                                            service.resource)
        return ("VirtualNetwork" if pe is not None else "Internet"), rid
    if vnet is None:
        return ("Internet" if is_public(int(ip)) else "VirtualNetwork"), None
    nic = net.nic_at.get((vnet.name.lower(), int(ip)))
    if nic is not None:
        vm = net.topo.vm_of_nic(nic.name)
        return "VirtualMachine", (net.topo.id_of("virtual_machines", vm) if vm
                                  else net.topo.id_of("network_interfaces", nic))
    owner = net.app_at.get((vnet.name.lower(), int(ip)))
    if owner is not None:
        return "VirtualNetwork", net.topo.id_of("web_apps", owner[0])
    return "VirtualNetwork", None


def connectivity_result(net: LabView, doc: dict) -> dict:
    flow, steps = doc["flow"], doc["steps"]
    source_kind = {"vm": "virtual_machines", "webapp": "web_apps", "nic": "network_interfaces"}.get(flow["source_kind"])
    src_res = net.topo.find(source_kind, flow["source"]) if source_kind else None
    hops = [_hop("Source", flow["source_ip"], net.topo.id_of(source_kind, src_res) if src_res else None)]
    for step in steps:
        if step["kind"] == "VirtualAppliance" and not step["dropped"]:
            hops.append(_hop("VirtualAppliance", step.get("ip"), step.get("resource_id")))
        elif step["kind"] == "VirtualNetworkGateway" and not step["dropped"]:
            # the VPN gateway the flow crosses (to or from on-premises), at its instance address
            gw = net.topo.find("virtual_network_gateways", step["gateway"])
            ip = gateway_private_ip(net.topo, gw) if gw else None
            hops.append(_hop("VirtualNetworkGateway", str(ip) if ip else None,
                             net.topo.id_of("virtual_network_gateways", gw) if gw else None))
    # Denied: the TCP connection opened (what connectivityCheck tests); the PaaS service refused it after
    connected = doc["verdict"] in ("Connected", "Denied")
    last = steps[-1] if steps else {}
    dest_kind, dest_id = destination_hop(net, flow["destination_ip"])
    dest = _hop(dest_kind, flow["destination_ip"], dest_id)
    hops.append(dest)
    if not connected:
        culprit = next((s for s in steps if s["dropped"]), last)
        # what the destination refused (its NSG inbound, or no listener) is the destination hop's issue
        at_destination = culprit.get("direction") == "Inbound" or (culprit is last and culprit.get("kind") == "Deliver")
        where = dest if at_destination else hops[-2]
        where["issues"].append(_issue(culprit, doc["reason"]))
    for a, b in pairwise(hops):
        a["nextHopIds"] = [b["id"]]
    sent = 66
    return {"hops": hops, "connectionStatus": "Reachable" if connected else "Unreachable",
            "avgLatencyInMs": 1 if connected else None, "minLatencyInMs": 1 if connected else None,
            "maxLatencyInMs": 2 if connected else None, "probesSent": sent, "probesFailed": 0 if connected else sent,
            # not in Azure's answer: the engine's own verdict, for REST callers
            "vnetlabTrace": {k: doc[k] for k in ("verdict", "reason", "explanation", "source_ip_seen", "admission")
                             if k in doc}}


def router(state: LabState) -> Router:
    r = Router()
    nw = "subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Network/networkWatchers"
    nic = "subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Network/networkInterfaces/{name}"
    routes = [("GET PUT PATCH", f"{nw}/{{name}}", get_watcher), ("GET", nw, list_watchers),
              ("GET", "subscriptions/{sub}/providers/Microsoft.Network/networkWatchers", list_watchers),
              ("POST", f"{nw}/{{name}}/ipFlowVerify", verify_ip_flow), ("POST", f"{nw}/{{name}}/nextHop", next_hop),
              ("POST", f"{nw}/{{name}}/connectivityCheck", connectivity_check),
              ("POST", f"{nic}/effectiveRouteTable", effective_routes),
              ("POST", f"{nic}/effectiveNetworkSecurityGroups", effective_nsgs)]
    for methods, pattern, handler in routes:
        r.add(methods, pattern, (lambda h: lambda call: h(state, call))(handler), blocking=True)
    r.add("DELETE", f"{nw}/{{name}}", lambda call: Response(status_code=200))
    return r
