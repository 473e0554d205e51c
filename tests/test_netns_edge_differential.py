"""Differential test for the lab's edges: generated labs where the internet calls web apps (random
access restrictions on the main and scm sites, default actions, public network access, private
endpoints to the apps, service endpoints on the callers' subnets, a NAT gateway's address) and VNets
talk to on-premises sites through a VPN gateway (gateway transit flags, a connection with a wrong
key, UDRs on the GatewaySubnet and on the spokes, NSGs on the VM and integration subnets, integrated
apps). Every flow's engine verdict must be what a real client sees in the emulation: ``curl
--cacert`` to the app's default host name (its status, and the ``x-ms-forbidden-ip`` a 403 names),
a TCP connection or a ping between VNets and on-premises hosts, and for TCP to port 80 the source
address the destination saw (``GET /ip``)."""

from __future__ import annotations

import json
import random
import re
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from vnetlab.backends import netns_backend as nb
from vnetlab.backends.netns import exec as nx
from vnetlab.engine.addressing import integration_addresses
from vnetlab.engine.network import LabView
from vnetlab.engine.paas import PUBLIC_ACCESS_CLOSED
from vnetlab.engine.trace import trace
from vnetlab.model import Topology

import test_netns_backend
from conftest import build
from netns_support import NETNS_MARKS, curl_failure  # noqa: E402

lab = test_netns_backend.lab  # the fixture: teardown + leftovers check

NVA = "10.0.3.4"
NAT_IP = "198.19.0.50"       # the NAT gateway's address: what the internet sees of spoke2's VMs
INTERNET_HOSTS = (("office", "203.0.113.10"), ("home", "203.0.113.77"), ("afd", "198.18.5.10"))  # afd: FrontDoor tag
APPS = ("apphub", "appspoke", "apppub")
ON_PREMISES = (("office", "lng-office", "192.168.0.0/16", (("onprem1", "192.168.1.10", [22, 80, 443]),
                                                            ("onprem2", "192.168.2.20", [22]))),
               ("branch", "lng-branch", "172.16.0.0/16", (("branch1", "172.16.1.10", [80]),)))
# an access restriction's source: (kind, value) as the generator draws it
# office, office and home, home, App Service's outbound addresses (apps' public path), VMs' default
# outbound access, the NAT gateway (spoke2's VMs), a private range (never matches: the multi-tenant
# front end sees public addresses or service endpoint subnets)
IP_SOURCES = ("203.0.113.10/32", "203.0.113.0/24", "203.0.113.77/32", "198.51.100.0/24", "192.0.2.0/24",
              f"{NAT_IP}/32", "10.0.0.0/8")
TAG_SOURCES = ("AzureFrontDoor.Backend", "AppService", "AzureCloud")
SUBNET_SOURCES = ("hub/vms", "spoke1/vms", "hub/integration")


def generate(seed: int) -> dict:
    """A hub (VMs, an NVA, apphub's integration subnet, a PE subnet, the GatewaySubnet with the VPN
    gateway), spoke1 (a VM, appspoke's integration subnet) and spoke2 (a VM behind a NAT gateway),
    both peered with the hub with random gateway transit and forwarded traffic flags; two sites, each
    behind a connection (its key maybe wrong); random UDRs on the GatewaySubnet and the spokes, random
    NSGs on the VM and integration subnets, random Microsoft.Web service endpoints; three apps with
    random access restrictions and public network access, each maybe behind a ``sites`` private
    endpoint whose zone is linked to random VNets; three internet hosts."""
    rnd = random.Random(seed)
    doc = {"name": f"edgediff{seed}", "location": "westeurope", "virtual_networks": _vnets(rnd),
           "virtual_machines": [{"name": "hubvm", "subnet": "hub/vms", "services": [{"port": 80}, {"port": 443}]},
                                {"name": "spoke1vm", "subnet": "spoke1/vms", "services": [{"port": 80}]},
                                {"name": "spoke2vm", "subnet": "spoke2/vms", "services": [{"port": 80}]},
                                {"name": "nva1", "subnet": "hub/nva", "private_ip_address": NVA,
                                 "enable_ip_forwarding": rnd.random() < 0.8, "services": [{"port": 80}]}],
           "public_ip_addresses": [{"name": "pip-gw"}, {"name": "pip-nat", "ip_address": NAT_IP}],
           "nat_gateways": [{"name": "natgw", "public_ip_addresses": ["pip-nat"]}],
           "internet_hosts": [{"name": n, "ip": ip} for n, ip in INTERNET_HOSTS]}
    doc.update(_gateway(rnd))
    doc["route_tables"] = _route_tables(rnd, doc)
    doc["network_security_groups"] = _nsgs(rnd, doc)
    doc.update(_apps(rnd, doc))
    _instance_public_ips(rnd, doc)
    return doc


VM_PUBLIC_IPS = (("hubvm", "198.19.0.60"), ("spoke2vm", "198.19.0.62"))


def _instance_public_ips(rnd: random.Random, doc: dict) -> None:
    """hubvm and spoke2vm (behind the NAT gateway: inbound "isn't affected" by it) each maybe with an
    instance-level public IP, which the internet reaches (DNAT to the NIC, the NSGs seeing the
    internet source) and which the VM's outbound flows leave by unless a NAT gateway takes them."""
    for vm, ip in VM_PUBLIC_IPS:
        if rnd.random() < 0.6:
            doc["public_ip_addresses"].append({"name": f"pip-{vm}", "ip_address": ip})
            next(v for v in doc["virtual_machines"] if v["name"] == vm)["public_ip_address"] = f"pip-{vm}"


def _vnets(rnd: random.Random) -> list[dict]:
    def web_endpoint() -> list[str]:
        return ["Microsoft.Web"] if rnd.random() < 0.5 else []
    hub_peerings = [{"name": f"hub-to-{s}", "remote_virtual_network": s, "allow_gateway_transit": rnd.random() < 0.7,
                     "allow_forwarded_traffic": rnd.random() < 0.7} for s in ("spoke1", "spoke2")]
    hub = {"name": "hub", "address_space": ["10.0.0.0/16"], "peerings": hub_peerings, "subnets": [
        {"name": "vms", "address_prefix": "10.0.0.0/24", "service_endpoints": web_endpoint()},
        {"name": "integration", "address_prefix": "10.0.1.0/26", "delegations": ["Microsoft.Web/serverFarms"],
         "service_endpoints": web_endpoint()},
        {"name": "pe", "address_prefix": "10.0.2.0/24"},
        {"name": "nva", "address_prefix": "10.0.3.0/24"},
        {"name": "GatewaySubnet", "address_prefix": "10.0.255.0/27"}]}
    spokes = [{"name": s, "address_space": [f"10.{i}.0.0/16"], "peerings": [
        {"name": f"{s}-to-hub", "remote_virtual_network": "hub", "use_remote_gateways": rnd.random() < 0.7,
         "allow_forwarded_traffic": rnd.random() < 0.7}], "subnets": [
        {"name": "vms", "address_prefix": f"10.{i}.0.0/24", "service_endpoints": web_endpoint()},
        {"name": "integration", "address_prefix": f"10.{i}.1.0/26", "delegations": ["Microsoft.Web/serverFarms"]}]}
        for i, s in ((1, "spoke1"), (2, "spoke2"))]
    spokes[1]["subnets"][0]["nat_gateway"] = "natgw"
    return [hub, *spokes]


def _gateway(rnd: random.Random) -> dict:
    """The hub's VPN gateway; a site behind each local network gateway, whose connection's key is
    sometimes not the device's (NotConnected)."""
    lngs, connections, sites = [], [], []
    for k, (site, lng, prefix, hosts) in enumerate(ON_PREMISES):
        lngs.append({"name": lng, "gateway_ip_address": f"198.51.100.{k + 1}", "address_prefixes": [prefix]})
        wrong_key = rnd.random() < (0.2 if k == 0 else 0.5)
        connections.append({"name": f"hub-to-{site}", "virtual_network_gateway": "gw1", "local_network_gateway": lng,
                            "shared_key": "other" if wrong_key else f"key-{site}"})
        sites.append({"name": site, "local_network_gateway": lng, "shared_key": f"key-{site}",
                      "hosts": [{"name": n, "ip": ip, "services": [{"port": p} for p in ports]}
                                for n, ip, ports in hosts]})
    return {"virtual_network_gateways": [{"name": "gw1", "virtual_network": "hub", "sku": "VpnGw1",
                                          "public_ip_address": "pip-gw"}],
            "local_network_gateways": lngs, "connections": connections, "on_premises_sites": sites}


def _subnet(doc: dict, ref: str) -> dict:
    vnet, name = ref.split("/")
    return next(s for v in doc["virtual_networks"] if v["name"] == vnet for s in v["subnets"] if s["name"] == name)


def _route_tables(rnd: random.Random, doc: dict) -> list[dict]:
    """The GatewaySubnet's UDRs (a spoke or the hub's VMs through the NVA, a spoke's VMs dropped);
    the spokes' VM subnets: gateway route propagation maybe off, the sites through the NVA, the
    gateway or nowhere, the internet maybe through the NVA."""
    tables = []
    gw_routes = [r for r in ({"name": "spoke1-via-nva", "address_prefix": "10.1.0.0/16",
                              "next_hop_type": "VirtualAppliance", "next_hop_ip_address": NVA},
                             {"name": "hubvms-via-nva", "address_prefix": "10.0.0.0/24",
                              "next_hop_type": "VirtualAppliance", "next_hop_ip_address": NVA},
                             {"name": "spoke2-drop", "address_prefix": "10.2.0.0/24", "next_hop_type": "None"})
                 if rnd.random() < 0.35]
    if gw_routes:
        tables.append({"name": "rt-gw", "routes": gw_routes})
        _subnet(doc, "hub/GatewaySubnet")["route_table"] = "rt-gw"
    for spoke in ("spoke1", "spoke2"):
        routes = []
        for prefix, _ in ((p, s) for s, _, p, _ in ON_PREMISES):
            hop = rnd.choice(["-", "-", "-", "VirtualAppliance", "None", "VirtualNetworkGateway"])
            if hop != "-":
                routes.append({"name": f"to-{prefix.split('.')[0]}", "address_prefix": prefix, "next_hop_type": hop,
                               **({"next_hop_ip_address": NVA} if hop == "VirtualAppliance" else {})})
        if rnd.random() < 0.3:   # forced tunneling: the internet (the apps' public side too) through the hub's NVA
            routes.append({"name": "default-via-nva", "address_prefix": "0.0.0.0/0",
                           "next_hop_type": "VirtualAppliance", "next_hop_ip_address": NVA})
        tables.append({"name": f"rt-{spoke}", "routes": routes, "disable_bgp_route_propagation": rnd.random() < 0.25})
        _subnet(doc, f"{spoke}/vms")["route_table"] = f"rt-{spoke}"
    return tables


SITE_PREFIXES = ("192.168.0.0/16", "192.168.1.10", "172.16.0.0/16", "VirtualNetwork", "*")
VNET_PREFIXES = ("*", "VirtualNetwork", "10.1.0.0/16", "10.0.0.0/24", "Internet")


def _nsgs(rnd: random.Random, doc: dict) -> list[dict]:
    """Three NSGs of random rules about the sites (their source inbound, their destination
    outbound), put on random VM and integration subnets."""
    nsgs = []
    for n in range(3):
        rules = []
        for p in range(rnd.randrange(1, 4)):
            inbound = rnd.random() < 0.5
            site, vnet = rnd.choice(SITE_PREFIXES), rnd.choice(VNET_PREFIXES)
            rules.append({"name": f"rule{p}", "priority": 100 + 10 * p, "direction": "Inbound" if inbound else "Outbound",
                          "access": rnd.choice(["Allow", "Deny", "Deny"]), "protocol": rnd.choice(["Tcp", "Icmp", "*"]),
                          "source_address_prefix": site if inbound else vnet,
                          "destination_address_prefix": vnet if inbound else site,
                          "source_port_range": "*", "destination_port_range": rnd.choice(["80", "443", "*", "22"])})
        nsgs.append({"name": f"nsg{n}", "security_rules": rules})
    for ref in ("hub/vms", "spoke1/vms", "spoke2/vms", "hub/integration", "spoke1/integration"):
        if rnd.random() < 0.5:
            _subnet(doc, ref)["network_security_group"] = f"nsg{rnd.randrange(3)}"
    return nsgs


def _apps(rnd: random.Random, doc: dict) -> dict:
    """apphub (integrated in the hub), appspoke (in spoke1), apppub (not integrated), each with random
    inbound settings, maybe a ``sites`` private endpoint in hub/pe; the privatelink zone linked to
    random VNets."""
    plans = [{"name": f"plan-{a}", "sku": "P1v3"} for a in APPS]
    apps, pes = [], []
    for name, integration in zip(APPS, ("hub/integration", "spoke1/integration", None), strict=True):
        private_endpoint = rnd.random() < 0.4
        app = {"name": name, "plan": f"plan-{name}", **_inbound(rnd, doc, private_endpoint)}
        if integration:
            app["vnet_integration"] = integration
            app["vnet_route_all_enabled"] = rnd.random() < 0.5
        apps.append(app)
        if private_endpoint:
            pes.append({"name": f"pe-{name}", "subnet": "hub/pe", "target": name, "group_id": "sites",
                        "private_dns_zone_group": ["privatelink.azurewebsites.net"]})
    links = [{"name": f"link-{v}", "virtual_network": v} for v in ("hub", "spoke1", "spoke2") if rnd.random() < 0.6]
    return {"app_service_plans": plans, "web_apps": apps, "private_endpoints": pes,
            "private_dns_zones": [{"name": "privatelink.azurewebsites.net", "virtual_network_links": links}]}


def _inbound(rnd: random.Random, doc: dict, private_endpoint: bool) -> dict:
    """An app's access restrictions (main and scm), default actions and public network access. An app
    with a private endpoint gets no service endpoint rule (subnet, AnyVnets): "not supported on apps
    that have private endpoint configured".
    https://learn.microsoft.com/azure/app-service/overview-access-restrictions#access-restriction-rules-based-on-service-endpoints"""
    kinds = ("ip", "ip", "tag") + (() if private_endpoint else ("subnet", "subnet", "anyvnets"))
    out: dict = {"ip_security_restrictions": _rules(rnd, doc, "main", kinds)}
    if rnd.random() < 0.5:
        out["ip_security_restrictions_default_action"] = rnd.choice(["Allow", "Deny"])
    out["scm_ip_security_restrictions_use_main"] = rnd.random() < 0.4
    if not out["scm_ip_security_restrictions_use_main"]:
        out["scm_ip_security_restrictions"] = _rules(rnd, doc, "scm", kinds)
        if rnd.random() < 0.3:
            out["scm_ip_security_restrictions_default_action"] = rnd.choice(["Allow", "Deny"])
    access = rnd.choice([None, None, None, "Enabled", "Disabled"])
    if access:
        out["public_network_access"] = access
    return out


def _rules(rnd: random.Random, doc: dict, site: str, kinds: tuple[str, ...]) -> list[dict]:
    rules = []
    for k in range(rnd.choice([0, 1, 2, 2, 3, 4])):
        kind = rnd.choice(kinds)
        rule = {"name": f"{site}-{kind}{k}", "priority": rnd.choice([100, 200, 300, 300]),
                "action": rnd.choice(["Allow", "Deny"])}
        if kind == "ip":
            rule["ip_address"] = rnd.choice(IP_SOURCES)
        elif kind == "tag":
            rule.update(ip_address=rnd.choice(TAG_SOURCES), tag="ServiceTag")
        elif kind == "anyvnets":
            rule["ip_address"] = "AnyVnets"
        else:
            ref = rnd.choice(SUBNET_SOURCES)
            rule["vnet_subnet_resource_id"] = ref
            if "Microsoft.Web" not in _subnet(doc, ref).get("service_endpoints", []):
                rule["ignore_missing_vnet_service_endpoint"] = True
        rules.append(rule)
    return rules


# -- the flows ---------------------------------------------------------------------------------------
WEB_SOURCES = tuple(n for n, _ in INTERNET_HOSTS) + ("hubvm", "spoke1vm", "spoke2vm", "apppub", "apphub", "appspoke")
VNET_SOURCES = ("hubvm", "spoke1vm", "spoke2vm", "nva1", "apphub", "appspoke", "apppub")
SITE_HOSTS = tuple((n, ip) for _, _, _, hosts in ON_PREMISES for n, ip, _ in hosts)
VM_TARGETS = ("hubvm", "spoke1vm", "spoke2vm")
PROTOCOLS = (("Tcp", 80), ("Tcp", 443), ("Icmp", None))


def web_flows(topo: Topology) -> list[tuple[str, str, int, str | None]]:
    """(source, host name, port, the address it is sent to: None for the one its name resolves to):
    every web source to every app's main and scm site over HTTPS, the internet hosts to the main
    sites over HTTP too, and each on-premises host to every app's private endpoint (by its address:
    the sites have no resolver of the lab)."""
    out = [(src, f"{app}{site}.azurewebsites.net", 443, None)
           for src in WEB_SOURCES for app in APPS for site in ("", ".scm")]
    out += [(src, f"{app}.azurewebsites.net", 80, None) for src, _ in INTERNET_HOSTS for app in APPS]
    for pe in topo.private_endpoints:
        nic = next(n for n in topo.network_interfaces if n.private_endpoint == pe.name)
        out += [(host, f"{pe.target}.azurewebsites.net", 443, nic.private_ip_address) for host, _ in SITE_HOSTS]
    return out


def net_flows(topo: Topology) -> list[tuple[str, str, str, int | None]]:
    """(source, destination address, protocol, port): the VNets' VMs and apps to every on-premises
    host, every on-premises host to every VM and to the integrated apps' addresses (outbound only:
    TCP reset)."""
    targets = [topo.find("network_interfaces", f"{vm}VMNic").private_ip_address for vm in VM_TARGETS]
    targets += [str(ips[0]) for ips in integration_addresses(topo).values()]
    out = [(src, ip, proto, port) for src in VNET_SOURCES for _, ip in SITE_HOSTS for proto, port in PROTOCOLS]
    out += [(host, ip, proto, port) for host, _ in SITE_HOSTS for ip in targets for proto, port in PROTOCOLS]
    # the internet to the lab's public IPs: the VMs' (inbound), the NAT gateway's and the VPN gateway's (not)
    public = [pip.ip_address for pip in topo.public_ip_addresses if pip.ip_address]
    out += [(host, ip, proto, port) for host, _ in INTERNET_HOSTS for ip in public for proto, port in
            (*PROTOCOLS, ("Tcp", 22))]
    return out


def web_traces(view: LabView) -> list:
    return [trace(view, src, address or name, port) for src, name, port, address in web_flows(view.topo)]


def net_traces(view: LabView) -> list:
    return [trace(view, src, dst, port, proto) for src, dst, proto, port in net_flows(view.topo)]


# -- coverage ------------------------------------------------------------------------------------------
RULE_NAME = re.compile(r"Restrictions(?: \(scmIpSecurityRestrictionsUseMain\))? (\S+) \(priority")


def web_label(src: str, port: int, t) -> str:
    """``<caller> by <path>: <outcome>``: the caller (internet, a VM, an app, on-premises), the path
    it came by (public, through an NVA, service endpoint, private endpoint), what decided (a kind of
    rule, the default action, public access, nothing for a private endpoint) and for which site."""
    who = "internet" if src in dict(INTERNET_HOSTS) else "app" if src.startswith("app") else \
        "on-premises" if src in dict(SITE_HOSTS) else "VM"
    who += " over HTTP" if port == 80 else ""
    if t.admission is None:
        return f"{who}: {t.verdict}"
    admission = next(s.detail for s in t.steps if s.kind == "Admission")
    path = "private endpoint" if admission.endpoint != "public" else \
        "service endpoint" if admission.source_subnet else \
        "public through an NVA" if any(s.kind == "VirtualAppliance" for s in t.steps) else "public"
    rule = t.admission.rule
    site = " (scm site, its own rules)" if rule.startswith("scm site: scmIpSecurityRestrictions") else \
        " (scm site, the main rules)" if "(scmIpSecurityRestrictionsUseMain)" in rule else ""
    if path == "private endpoint":
        decided = "no restriction"
    elif rule.startswith(PUBLIC_ACCESS_CLOSED):
        decided = "public network access" + (" (closed by a private endpoint)" if "private endpoint" in rule else "")
    elif "no rule matches" in rule:
        decided = "default action"
    else:
        decided = f"{re.sub(r'[0-9]', '', RULE_NAME.search(rule).group(1).split('-', 1)[1])} rule"
    return f"{who} by {path}: {'Allowed' if t.admission.allowed else 'Denied'} by {decided}{site}"


def net_label(src: str, t) -> list[str]:
    """The gateway paths a flow took and how it ended."""
    kinds = [s.kind for s in t.steps]
    who = "on-premises" if any(src == h for h, _ in SITE_HOSTS) else "app" if src.startswith("app") else \
        "internet" if src in dict(INTERNET_HOSTS) else "spoke" if src.startswith("spoke") else "hub"
    out = [f"{who}: {t.reason}"]
    if "VirtualNetworkGateway" in kinds:
        transit = any(s.kind == "VNetPeering" for s in t.steps)
        out.append(f"{who} through the gateway{' by transit' if transit else ''}: {t.verdict}")
        if "VirtualAppliance" in kinds:
            out.append(f"gateway path through the NVA: {t.verdict}")
    if t.verdict == "Connected" and t.flow.protocol == "Tcp" and t.flow.port == 80:
        out.append(f"{who}: source seen checked")
    return out


def rule_without_endpoint(topo: Topology, src: str, name: str) -> bool:
    """The site ``name`` is for has a subnet rule naming the VM ``src``'s subnet, which lacks the
    Microsoft.Web service endpoint (the rule cannot match: the VM arrives by its public address)."""
    vm = topo.find("virtual_machines", src)
    if vm is None:
        return False
    app = topo.find("web_apps", name.split(".", 1)[0])
    scm = ".scm." in name and not app.scm_ip_security_restrictions_use_main
    rules = app.scm_ip_security_restrictions if scm else app.ip_security_restrictions
    ref = topo.find("network_interfaces", vm.network_interface).subnet.lower()
    sn = topo.subnet(ref)[1]
    return "Microsoft.Web" not in sn.service_endpoints and \
        any((r.vnet_subnet_resource_id or "").lower() == ref for r in rules)


def coverage(web: list, net: list, topo: Topology) -> Counter:
    out: Counter = Counter()
    for (src, name, port, _), t in zip(web_flows(topo), web, strict=True):
        out[web_label(src, port, t)] += 1
        if rule_without_endpoint(topo, src, name):
            out[f"VM's subnet rule without the Microsoft.Web service endpoint: {t.verdict}"] += 1
    for (src, *_), t in zip(net_flows(topo), net, strict=True):
        out.update(net_label(src, t))
    return out


# every path and verdict the seeds together must exercise (the engine's words, asserted)
WEB_COVERAGE = {
    # the internet: each kind of decision, main and scm sites, HTTPS and HTTP
    "internet by public: Allowed by ip rule", "internet by public: Allowed by tag rule",
    "internet by public: Allowed by default action", "internet by public: Denied by ip rule",
    "internet by public: Denied by default action", "internet by public: Denied by public network access",
    "internet by public: Denied by public network access (closed by a private endpoint)",
    "internet by public: Denied by default action (scm site, its own rules)",
    "internet by public: Allowed by default action (scm site, its own rules)",
    "internet by public: Denied by ip rule (scm site, the main rules)",
    "internet over HTTP by public: Allowed by default action", "internet over HTTP by public: Denied by default action",
    # VMs: their outbound address (default outbound, NAT gateway, the hub's NVA), service endpoint, PE
    "VM by public: Allowed by ip rule", "VM by public: Denied by default action",
    "VM by public: Denied by public network access",
    "VM by public through an NVA: Allowed by default action", "VM by public through an NVA: Denied by default action",
    "VM by service endpoint: Allowed by subnet rule", "VM by service endpoint: Denied by default action",
    "VM by service endpoint: Allowed by anyvnets rule", "VM by service endpoint: Denied by public network access",
    "VM by private endpoint: Allowed by no restriction",
    "VM's subnet rule without the Microsoft.Web service endpoint: Denied",
    # apps (App Service outbound addresses, integration subnets' service endpoints, PEs) and on-premises (PEs)
    "app by private endpoint: Allowed by no restriction", "app by public: Allowed by ip rule",
    "app by public: Denied by default action", "app by service endpoint: Allowed by subnet rule",
    "on-premises by private endpoint: Allowed by no restriction",
}
NET_COVERAGE = {
    # the hub's own VMs and apps: answered, refused, the connection's key wrong, NSGs, the reply's UDR
    "hub: Reachable", "hub: NoListener", "hub: ConnectionNotConnected", "hub: NsgDenied", "hub: ReturnPathDropped",
    # spokes: transit used, missing (RouteNone; a UDR to the gateway: NoGateway), UDRs through the NVA
    "spoke: Reachable", "spoke: RouteNone", "spoke: NoGateway", "spoke: ConnectionNotConnected",
    "spoke: NextHopNotForwarding", "spoke: NsgDenied",
    "app: Reachable", "app: PrivateAddressOnInternet", "app: ConnectionNotConnected", "app: NsgDenied", "app: RouteNone",
    # on-premises hosts: to the hub and to spokes by transit, or not (OnPremisesNoRoute), the GatewaySubnet's UDRs
    "on-premises: Reachable", "on-premises: OnPremisesNoRoute", "on-premises: ConnectionNotConnected",
    "on-premises: NsgDenied", "on-premises: RouteNone", "on-premises: ReturnPathDropped",
    "on-premises: NextHopNotForwarding", "on-premises: NoListener", "on-premises: IntegrationInboundRefused",
    "spoke through the gateway by transit: Connected", "app through the gateway by transit: Connected",
    "on-premises through the gateway by transit: Connected", "gateway path through the NVA: Connected",
    # the address the destination saw (GET /ip), each way
    "hub: source seen checked", "spoke: source seen checked", "app: source seen checked",
    "on-premises: source seen checked",
    # the internet to the lab's public IPs: a VM's (answered, refused, NSG), the NAT gateway's, the VPN gateway's
    "internet: Reachable", "internet: NoListener", "internet: NsgDenied", "internet: NatGatewayInboundRefused",
    "internet: NatGatewayInboundNotAnswered", "internet: NoHostAtDestination", "internet: source seen checked",
    "internet: ReturnPathDropped",   # the reply (a reset too) of a subnet whose 0.0.0.0/0 goes to an NVA
}
SEEDS = (5, 47, 49, 98, 194)


def test_the_generator_covers_every_edge_path_and_verdict():
    """Without the kernel: the seeds the kernel test runs exercise, together, every inbound path and
    decision and every gateway path and outcome listed above."""
    union: Counter = Counter()
    for seed in SEEDS:
        view = LabView(build(generate(seed)))
        union += coverage(web_traces(view), net_traces(view), view.topo)
    missing = (WEB_COVERAGE | NET_COVERAGE) - {k for k, n in union.items() if n}
    assert not missing, (sorted(missing), union)


# -- the real clients ---------------------------------------------------------------------------------
CLIENT = r'''
import json, socket, subprocess, sys
from concurrent.futures import ThreadPoolExecutor
a = json.loads(sys.stdin.read())
T = a["timeout"]

def web(name, port, ip):
    argv = ["curl", "-sS", "-i", "--cacert", a["ca"], "--connect-timeout", str(T), "--max-time", str(T + 7)]
    if ip:   # a client without the lab's resolver (internet, on-premises): the address the engine sends it to
        argv += ["--resolve", "%s:%d:%s" % (name, port, ip)]
    url = ("https://%s/" if port == 443 else "http://%s/") % name
    p = subprocess.run(argv + [url], capture_output=True, text=True)
    return {"exit": p.returncode, "out": p.stdout, "err": p.stderr.strip()}

def tcp(dst, port):
    s = socket.socket(); s.settimeout(T)
    try:
        s.connect((dst, port))
    except ConnectionRefusedError:
        return {"verdict": "Refused"}
    except OSError as e:
        return {"verdict": "TimedOut" if isinstance(e, TimeoutError) or "timed out" in str(e) else "Unreachable: %s" % e}
    try:
        if port != 80:
            return {"verdict": "Connected"}
        s.settimeout(T + 3)
        s.sendall(b"GET /ip HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return {"verdict": "Connected", "seen": data.partition(b"\r\n\r\n")[2].decode().strip()}
    except OSError as e:
        return {"verdict": "Connected", "seen": "? %s" % e}
    finally:
        s.close()

def icmp(dst):
    p = subprocess.run(["ping", "-n", "-c", "1", "-W", str(T), dst], capture_output=True, text=True)
    return {"verdict": "Connected" if p.returncode == 0 else
            "Unreachable" if "unreachable" in (p.stdout + p.stderr).lower() else "TimedOut"}

def one(f):
    kind = f[0]
    return web(f[1], f[2], f[3]) if kind == "web" else tcp(f[1], f[2]) if kind == "Tcp" else icmp(f[1])

with ThreadPoolExecutor(max_workers=64) as ex:
    print(json.dumps(list(ex.map(one, a["flows"]))))
'''
TIMEOUT = 2   # the clients' connect timeout (seconds); answers get more (a loaded machine is slow to answer)


def web_expected(t) -> str:
    """What a client of the app sees, by the engine: 200, a 403 naming the caller, or no answer."""
    return f"Denied {t.source_ip_seen}" if t.verdict == "Denied" else str(t.verdict)


def web_real(got: dict) -> str:
    if (failure := curl_failure(got)) is not None:
        return failure
    head = got["out"].replace("\r\n", "\n").partition("\n\n")[0].split("\n")
    status = head[0].split(" ", 2)
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
    if status[1] == "200":
        return "Connected"
    if status[1] == "403" and status[2] == "Ip Forbidden":
        return f"Denied {headers.get('x-ms-forbidden-ip')}"
    return f"? HTTP {' '.join(status[1:])}"


def net_expected(t) -> str:
    """The verdict, and for TCP to port 80 answered the source address the destination saw."""
    seen = t.flow.protocol == "Tcp" and t.flow.port == 80 and t.verdict == "Connected"
    return f"Connected seen {t.source_ip_seen}" if seen else str(t.verdict)


def net_real(got: dict) -> str:
    return f"Connected seen {got['seen']}" if "seen" in got else got["verdict"]


@NETNS_MARKS[0]
@NETNS_MARKS[1]
@pytest.mark.parametrize("seed", SEEDS)
def test_engine_equals_real_clients(lab, seed, capsys):
    lab.up(Topology.model_validate(generate(seed)), "netns")
    view = lab.network()
    web, net = web_traces(view), net_traces(view)
    internet = dict(INTERNET_HOSTS)
    # (source, request, engine's words, what the real answer means in them)
    tasks = [(src, ["web", name, port, address or (t.flow.destination_ip if src in internet else None)],
              web_expected(t), web_real) for (src, name, port, address), t in zip(web_flows(view.topo), web, strict=True)]
    tasks += [(src, [proto, dst, port], net_expected(t), net_real)
              for (src, dst, proto, port), t in zip(net_flows(view.topo), net, strict=True)]
    by_src = {src: [i for i, task in enumerate(tasks) if task[0] == src] for src in dict.fromkeys(t[0] for t in tasks)}
    ca = str(lab.home / "tls" / "ca.pem")

    def run(src: str) -> list:
        args = {"ca": ca, "timeout": TIMEOUT, "flows": [tasks[i][1] for i in by_src[src]]}
        p = nx.run_in(nb.namespace_of(lab, src), [sys.executable, "-c", CLIENT], input=json.dumps(args), timeout=120)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)

    with ThreadPoolExecutor(max_workers=len(by_src)) as ex:
        answers = dict(zip(by_src, ex.map(run, by_src), strict=True))
    traces = web + net
    bad = []
    for src, idx in by_src.items():
        for i, got in zip(idx, answers[src], strict=True):
            _, request, want, real_of = tasks[i]
            if real_of(got) != want:
                bad.append((src, request, want, traces[i].reason, real_of(got)))
    with capsys.disabled():
        for src, request, want, reason, real in bad[:20]:
            print(f"  MISMATCH {src} {request}: engine {want} ({reason}) real {real}")
    assert not bad, f"{len(bad)} of {len(tasks)} flows differ"
