"""Microsoft.Network: virtualNetworks (subnets, virtualNetworkPeerings), networkSecurityGroups
(securityRules), routeTables (routes), networkInterfaces.

Wire shapes follow the REST reference and what the SDK and CLI send:
https://learn.microsoft.com/rest/api/virtualnetwork/
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ..engine.routing import peering_state
from ..lab import delete_vnet
from ..model import (Delegation, NetworkInterface, NetworkSecurityGroup, Route, RouteTable,
                     SecurityRule, Subnet, Topology, VirtualNetwork, VirtualNetworkPeering)
from ..model.ids import resource_id
from ..model.network import PRIMARY_IP_CONFIGURATION
from ..model.nsg import DEFAULT_SECURITY_RULES
from .arm import Router, bad_request
from .resource import Child, TopLevel, envelope, location_of
from .state import LabState, Obj, check_ref_group, guid, parse_ref, require

NS = "Microsoft.Network"
OK = "Succeeded"
# https://learn.microsoft.com/azure/virtual-network/subnet-delegation-overview
DELEGATION_ACTIONS = {"microsoft.web/serverfarms": ["Microsoft.Network/virtualNetworks/subnets/action"]}


# -- references --------------------------------------------------------------------------------

def ref_id(topo: Topology, kind: str, name: str | None) -> str | None:
    if not name:
        return None
    res = topo.find(kind, name)
    return topo.id_of(kind, res) if res else resource_id(topo.subscription_id, topo.resource_group, kind, name)


def ref_name(topo: Topology, body: Obj, key: str, kind: str, type_: str) -> str | None:
    """The name of the resource a ``{"id": ...}`` member points at."""
    rid = body.ref(key)
    if not rid:
        return None
    path = f"{body.path}.{key}.id".lstrip(".")
    name, rg = parse_ref(rid, NS, (type_,), path, topo)
    check_ref_group(topo, kind, name, rg, rid, path)
    return name


def subnet_ref(topo: Topology, body: Obj, key: str) -> str | None:
    """``VNET/SUBNET`` from a subnet reference ``{"id": ...}``."""
    rid = body.ref(key)
    return subnet_of_id(topo, rid, f"{body.path}.{key}.id".lstrip(".")) if rid else None


def subnet_of_id(topo: Topology, rid: str, path: str) -> str:
    """``VNET/SUBNET`` from a subnet id."""
    vnet, subnet, rg = parse_ref(rid, NS, ("virtualNetworks", "subnets"), path, topo)
    check_ref_group(topo, "virtual_networks", vnet, rg, rid, path)
    return f"{vnet}/{subnet}"


def subnet_id(topo: Topology, ref: str) -> str:
    return topo.subnet_id(ref)


def _tags(body: Obj) -> dict:
    return dict(body.obj("tags").data)


# -- virtual networks --------------------------------------------------------------------------

def vnet_wire(topo: Topology, vnet: VirtualNetwork) -> dict:
    rid = topo.id_of("virtual_networks", vnet)
    props = {"provisioningState": OK, "resourceGuid": guid(rid),
             "addressSpace": {"addressPrefixes": list(vnet.address_space)},
             "dhcpOptions": {"dnsServers": list(vnet.dns_servers)},
             "subnets": SUBNETS.embedded(topo, vnet),
             "virtualNetworkPeerings": PEERINGS.embedded(topo, vnet),
             "enableDdosProtection": False}
    return envelope(rid, vnet.name, f"{NS}/virtualNetworks", topo.location_of(vnet), vnet.tags, props)


def vnet_from_wire(topo: Topology, body: Obj, current: VirtualNetwork | None, rg: str, name: str) -> VirtualNetwork:
    props = body.obj("properties")
    prefixes = props.obj("addressSpace").strs("addressPrefixes")
    if not prefixes:
        raise bad_request(f"Virtual network {name} must have at least one address prefix in "
                          "properties.addressSpace.addressPrefixes.", "InvalidAddressSpace")
    draft = VirtualNetwork(name=name, resource_group=rg, address_space=prefixes,
                           location=location_of(body, f"{NS}/virtualNetworks",
                                                current and topo.location_of(current)),
                           tags=_tags(body), dns_servers=props.obj("dhcpOptions").strs("dnsServers"))
    # A PUT replaces the subnets (as in Azure: omitting them deletes them); peerings are kept
    # unless the body lists them.
    draft.subnets = [subnet_from_wire(topo, item, draft, _child(current, "subnets", item), _name(item))
                     for item in props.objs("subnets")]
    if "virtualNetworkPeerings" in props:
        draft.peerings = [peering_from_wire(topo, item, draft, None, _name(item))
                          for item in props.objs("virtualNetworkPeerings")]
    elif current is not None:
        draft.peerings = list(current.peerings)
    return draft


def _name(item: Obj) -> str:
    return require(item.str("name"), f"{item.path}.name")


def _child(parent, attr: str, item: Obj):
    if parent is None:
        return None
    name = (item.str("name") or "").lower()
    return next((c for c in getattr(parent, attr) if c.name.lower() == name), None)


# -- subnets -----------------------------------------------------------------------------------

def subnet_wire(topo: Topology, vnet: VirtualNetwork, sn: Subnet) -> dict:
    rid = topo.id_of("virtual_networks", vnet, "subnets", sn.name)
    # one range: addressPrefix; several: addressPrefixes, as Azure answers
    props: dict = {"provisioningState": OK, **({"addressPrefixes": sn.prefixes} if sn.address_prefixes
                                               else {"addressPrefix": sn.address_prefix})}
    if sn.network_security_group:
        props["networkSecurityGroup"] = {"id": ref_id(topo, "network_security_groups", sn.network_security_group)}
    if sn.route_table:
        props["routeTable"] = {"id": ref_id(topo, "route_tables", sn.route_table)}
    if sn.nat_gateway:
        props["natGateway"] = {"id": ref_id(topo, "nat_gateways", sn.nat_gateway)}
    if sn.default_outbound_access is not None:
        props["defaultOutboundAccess"] = sn.default_outbound_access
    if sn.service_endpoints:
        props["serviceEndpoints"] = [{"provisioningState": OK, "service": s, "locations": [topo.location_of(vnet)]}
                                     for s in sn.service_endpoints]
    nics = topo.nics_in(vnet.name, sn.name)
    if nics:
        props["ipConfigurations"] = [{"id": f"{topo.id_of('network_interfaces', n)}/ipConfigurations/{c.name}"}
                                     for n in nics for c in n.ip_configurations]
    endpoints = [n.private_endpoint for n in nics if n.private_endpoint]
    if endpoints:
        props["privateEndpoints"] = [{"id": ref_id(topo, "private_endpoints", pe)} for pe in endpoints]
    apps = topo.apps_integrated_with(vnet.name, sn.name)
    plans = [a.plan for a in apps[:1]] or sn.service_association_links[:1]  # live, or left by a deleted app
    if plans:
        props["serviceAssociationLinks"] = [service_association_link(topo, rid, plans[0])]
    props["delegations"] = [delegation_wire(rid, d) for d in sn.delegations]
    props["privateEndpointNetworkPolicies"] = sn.private_endpoint_network_policies
    props["privateLinkServiceNetworkPolicies"] = "Enabled"
    return envelope(rid, sn.name, f"{NS}/virtualNetworks/subnets", None, None, props)


def delegation_wire(subnet_rid: str, d: Delegation) -> dict:
    return {"name": d.name, "id": f"{subnet_rid}/delegations/{d.name}",
            "type": f"{NS}/virtualNetworks/subnets/delegations",
            "properties": {"provisioningState": OK, "serviceName": d.service_name,
                           "actions": DELEGATION_ACTIONS.get(d.service_name.lower(), [])}}


def service_association_link(topo: Topology, subnet_rid: str, plan_name: str) -> dict:
    """What App Service puts on an integration subnet (read-only).
    https://learn.microsoft.com/azure/app-service/overview-vnet-integration#permissions"""
    plan = topo.find("app_service_plans", plan_name)
    return {"name": "AppServiceLink", "id": f"{subnet_rid}/serviceAssociationLinks/AppServiceLink",
            "type": f"{NS}/virtualNetworks/subnets/serviceAssociationLinks",
            "properties": {"provisioningState": OK, "linkedResourceType": "Microsoft.Web/serverfarms",
                           "link": ref_id(topo, "app_service_plans", plan.name if plan else plan_name),
                           "enabledForArmDeployments": False, "allowDelete": False, "locations": []}}


def subnet_from_wire(topo: Topology, body: Obj, vnet: VirtualNetwork, current: Subnet | None, name: str) -> Subnet:
    props = body.obj("properties")
    prefix = props.str("addressPrefix") or next(iter(props.strs("addressPrefixes")), None)
    require(prefix, f"{props.path}.addressPrefix".lstrip("."))
    delegations = []
    for item in props.objs("delegations"):
        service = item.obj("properties").str("serviceName") or item.str("serviceName")
        require(service, f"{item.path}.properties.serviceName")
        delegations.append(Delegation(name=item.str("name") or "", service_name=service))
    endpoints = [require(e.str("service"), f"{e.path}.service".lstrip(".")) for e in props.objs("serviceEndpoints")]
    return Subnet(name=name, address_prefix=prefix, address_prefixes=props.strs("addressPrefixes"),
                  delegations=delegations, service_endpoints=endpoints,
                  network_security_group=ref_name(topo, props, "networkSecurityGroup", "network_security_groups",
                                                  "networkSecurityGroups"),
                  route_table=ref_name(topo, props, "routeTable", "route_tables", "routeTables"),
                  nat_gateway=ref_name(topo, props, "natGateway", "nat_gateways", "natGateways"),
                  default_outbound_access=props.bool("defaultOutboundAccess", None),
                  private_endpoint_network_policies=props.str("privateEndpointNetworkPolicies", "Disabled"))


# -- peerings ----------------------------------------------------------------------------------

def peering_wire(topo: Topology, vnet: VirtualNetwork, p: VirtualNetworkPeering) -> dict:
    rid = topo.id_of("virtual_networks", vnet, "virtualNetworkPeerings", p.name)
    remote = topo.vnet(p.remote_virtual_network)
    state = peering_state(topo, vnet, p)
    space = {"addressPrefixes": list(remote.address_space) if remote else []}
    props = {"provisioningState": OK, "peeringState": state,
             "peeringSyncLevel": "FullyInSync" if state == "Connected" else "RemoteNotInSync",
             "remoteVirtualNetwork": {"id": ref_id(topo, "virtual_networks", p.remote_virtual_network)},
             "allowVirtualNetworkAccess": p.allow_virtual_network_access,
             "allowForwardedTraffic": p.allow_forwarded_traffic, "allowGatewayTransit": p.allow_gateway_transit,
             "useRemoteGateways": p.use_remote_gateways, "doNotVerifyRemoteGateways": False,
             "remoteAddressSpace": space, "remoteVirtualNetworkAddressSpace": space}
    return envelope(rid, p.name, f"{NS}/virtualNetworks/virtualNetworkPeerings", None, None, props)


def peering_from_wire(topo: Topology, body: Obj, vnet: VirtualNetwork, current, name: str) -> VirtualNetworkPeering:
    props = body.obj("properties")
    remote = ref_name(topo, props, "remoteVirtualNetwork", "virtual_networks", "virtualNetworks")
    require(remote, f"{props.path}.remoteVirtualNetwork.id".lstrip("."))
    return VirtualNetworkPeering(name=name, remote_virtual_network=remote,
                                 allow_virtual_network_access=props.bool("allowVirtualNetworkAccess", True),
                                 allow_forwarded_traffic=props.bool("allowForwardedTraffic", False),
                                 allow_gateway_transit=props.bool("allowGatewayTransit", False),
                                 use_remote_gateways=props.bool("useRemoteGateways", False))


# -- network security groups -------------------------------------------------------------------

def rule_wire(topo: Topology, nsg: NetworkSecurityGroup, rule: SecurityRule, segment: str = "securityRules") -> dict:
    rid = topo.id_of("network_security_groups", nsg, segment, rule.name)
    props: dict = {"provisioningState": OK}
    if rule.description:
        props["description"] = rule.description
    props["protocol"] = rule.protocol
    for single, plural in (("sourcePortRange", "source_port"), ("destinationPortRange", "destination_port"),
                           ("sourceAddressPrefix", "source_address"),
                           ("destinationAddressPrefix", "destination_address")):
        value = getattr(rule, plural + ("_range" if "Port" in single else "_prefix"))
        if value is not None:
            props[single] = value
    props.update(access=rule.access, priority=rule.priority, direction=rule.direction,
                 sourcePortRanges=list(rule.source_port_ranges),
                 destinationPortRanges=list(rule.destination_port_ranges),
                 sourceAddressPrefixes=list(rule.source_address_prefixes),
                 destinationAddressPrefixes=list(rule.destination_address_prefixes))
    return envelope(rid, rule.name, f"{NS}/networkSecurityGroups/{segment}", None, None, props)


def rule_from_wire(topo: Topology, body: Obj, nsg, current, name: str) -> SecurityRule:
    props = body.obj("properties")
    for key in ("protocol", "access", "direction"):
        require(props.str(key), f"properties.{key}")
    return SecurityRule(name=name, priority=require(props.int("priority"), "properties.priority"),
                        protocol=props.str("protocol"), access=props.str("access"), direction=props.str("direction"),
                        description=props.str("description", ""),
                        source_address_prefix=props.str("sourceAddressPrefix"),
                        source_address_prefixes=props.strs("sourceAddressPrefixes"),
                        destination_address_prefix=props.str("destinationAddressPrefix"),
                        destination_address_prefixes=props.strs("destinationAddressPrefixes"),
                        source_port_range=props.str("sourcePortRange"),
                        source_port_ranges=props.strs("sourcePortRanges"),
                        destination_port_range=props.str("destinationPortRange"),
                        destination_port_ranges=props.strs("destinationPortRanges"))


def nsg_wire(topo: Topology, nsg: NetworkSecurityGroup, users: tuple[dict, dict] | None = None) -> dict:
    """``users``: the subnets and NICs of every NSG (``_nsg_users``), when many are written at once."""
    rid = topo.id_of("network_security_groups", nsg)
    props: dict = {"provisioningState": OK, "resourceGuid": guid(rid),
                   "securityRules": RULES.embedded(topo, nsg),
                   "defaultSecurityRules": [rule_wire(topo, nsg, r, "defaultSecurityRules")
                                            for r in DEFAULT_SECURITY_RULES]}
    subnets_by, nics_by = users or _nsg_users(topo, nsg.name.lower())
    subnets = subnets_by.get(nsg.name.lower(), [])
    nics = [topo.id_of("network_interfaces", n) for n in nics_by.get(nsg.name.lower(), [])]
    if subnets:
        props["subnets"] = [{"id": s} for s in subnets]
    if nics:
        props["networkInterfaces"] = [{"id": n} for n in nics]
    return envelope(rid, nsg.name, f"{NS}/networkSecurityGroups", topo.location_of(nsg), nsg.tags, props)


def _nsg_users(topo: Topology, only: str | None = None) -> tuple[dict, dict]:
    """The subnets and the NICs of every NSG (``only``: of that lower-cased name alone)."""
    return topo.subnets_by("network_security_group", only), topo.nics_by_nsg(only)


def nsg_wires(topo: Topology, nsgs: list[NetworkSecurityGroup]) -> Iterable[dict]:
    users = _nsg_users(topo)   # once for the list, not once per NSG
    return (nsg_wire(topo, nsg, users) for nsg in nsgs)


def nsg_from_wire(topo: Topology, body: Obj, current, rg: str, name: str) -> NetworkSecurityGroup:
    props = body.obj("properties")
    draft = NetworkSecurityGroup(name=name, resource_group=rg, tags=_tags(body),
                                 location=location_of(body, f"{NS}/networkSecurityGroups",
                                                      current and topo.location_of(current)))
    draft.security_rules = [rule_from_wire(topo, item, draft, None, _name(item))
                            for item in props.objs("securityRules")]
    return draft


# -- route tables ------------------------------------------------------------------------------

def route_wire(topo: Topology, table: RouteTable, route: Route) -> dict:
    rid = topo.id_of("route_tables", table, "routes", route.name)
    props: dict = {"provisioningState": OK, "addressPrefix": route.address_prefix, "nextHopType": route.next_hop_type}
    if route.next_hop_ip_address:
        props["nextHopIpAddress"] = route.next_hop_ip_address
    props["hasBgpOverride"] = False
    return envelope(rid, route.name, f"{NS}/routeTables/routes", None, None, props)


def route_from_wire(topo: Topology, body: Obj, table, current, name: str) -> Route:
    props = body.obj("properties")
    return Route(name=name, address_prefix=require(props.str("addressPrefix"), "properties.addressPrefix"),
                 next_hop_type=require(props.str("nextHopType"), "properties.nextHopType"),
                 next_hop_ip_address=props.str("nextHopIpAddress"))


def subnet_users_wires(attr: str, wire: Callable[..., dict]) -> Callable[[Topology, list], Iterable[dict]]:
    """``TopLevel.to_wire_many`` for a resource whose wire lists the subnets using it (``attr``: the
    subnet's field naming it): the subnets of every item found in one pass for the list, given to
    ``wire(topo, item, users)``, not one pass over the lab per item."""
    def many(topo: Topology, items: list) -> Iterable[dict]:
        users = topo.subnets_by(attr)
        return (wire(topo, item, users) for item in items)
    return many


def route_table_wire(topo: Topology, table: RouteTable, users: dict[str, list[str]] | None = None) -> dict:
    """``users``: the subnets of every route table (``Topology.subnets_by``), when many are written at once."""
    rid = topo.id_of("route_tables", table)
    props: dict = {"provisioningState": OK, "resourceGuid": guid(rid),
                   "disableBgpRoutePropagation": table.disable_bgp_route_propagation,
                   "routes": ROUTES.embedded(topo, table)}
    subnets = (users.get(table.name.lower(), []) if users is not None
               else topo.subnets_using("route_table", table.name))
    if subnets:
        props["subnets"] = [{"id": s} for s in subnets]
    return envelope(rid, table.name, f"{NS}/routeTables", topo.location_of(table), table.tags, props)


def route_table_from_wire(topo: Topology, body: Obj, current, rg: str, name: str) -> RouteTable:
    props = body.obj("properties")
    draft = RouteTable(name=name, resource_group=rg, tags=_tags(body),
                       disable_bgp_route_propagation=props.bool("disableBgpRoutePropagation", False),
                       location=location_of(body, f"{NS}/routeTables", current and topo.location_of(current)))
    draft.routes = [route_from_wire(topo, item, draft, None, _name(item)) for item in props.objs("routes")]
    return draft


# -- network interfaces ------------------------------------------------------------------------

def mac_address(rid: str) -> str:
    octets = guid(rid).replace("-", "")[:10]
    return "00-0D-3A-" + "-".join(octets[i:i + 2].upper() for i in range(0, 6, 2))


def ip_configuration_wire(topo: Topology, nic: NetworkInterface, rid: str, config) -> dict:
    props = {"provisioningState": OK, "privateIPAddress": config.private_ip_address,
             "privateIPAllocationMethod": config.private_ip_allocation_method,
             "subnet": {"id": topo.subnet_id(nic.subnet)}, "primary": config.primary,
             "privateIPAddressVersion": "IPv4"}
    if config.primary and nic.public_ip_address:
        props["publicIPAddress"] = {"id": ref_id(topo, "public_ip_addresses", nic.public_ip_address)}
    return {"name": config.name, "id": f"{rid}/ipConfigurations/{config.name}",
            "type": f"{NS}/networkInterfaces/ipConfigurations", "properties": props}


def nic_wire(topo: Topology, nic: NetworkInterface) -> dict:
    rid = topo.id_of("network_interfaces", nic)
    props: dict = {"provisioningState": OK, "resourceGuid": guid(rid),
                   "ipConfigurations": [ip_configuration_wire(topo, nic, rid, c) for c in nic.ip_configurations],
                   "dnsSettings": {"dnsServers": list(nic.dns_servers), "appliedDnsServers": applied_dns(topo, nic)},
                   "macAddress": mac_address(rid), "enableAcceleratedNetworking": False,
                   "enableIPForwarding": nic.enable_ip_forwarding, "primary": True, "nicType": "Standard",
                   "vnetEncryptionSupported": False}
    if nic.network_security_group:
        props["networkSecurityGroup"] = {"id": ref_id(topo, "network_security_groups", nic.network_security_group)}
    vm = topo.vm_of_nic(nic.name)
    if vm is not None:
        props["virtualMachine"] = {"id": topo.id_of("virtual_machines", vm)}
    if nic.private_endpoint:  # the read-only NIC of a private endpoint
        props["privateEndpoint"] = {"id": ref_id(topo, "private_endpoints", nic.private_endpoint)}
    return envelope(rid, nic.name, f"{NS}/networkInterfaces", topo.location_of(nic), nic.tags, props, kind="Regular")


def applied_dns(topo: Topology, nic: NetworkInterface) -> list[str]:
    """dnsSettings.appliedDnsServers: the NIC's own servers, else its VNet's (empty: Azure-provided DNS).
    https://learn.microsoft.com/azure/virtual-network/virtual-network-network-interface#change-dns-servers"""
    found = topo.subnet(nic.subnet)
    return list(nic.dns_servers or (found[0].dns_servers if found else []))


def primary_config(configs: list) -> Obj:
    """The properties of the primary IP configuration (the first when none says primary)."""
    props = [c.obj("properties") for c in configs]
    return next((p for p in props if p.bool("primary")), props[0])


def ip_configurations_from_wire(topo: Topology, configs: list, name: str) -> tuple[str, list[dict]]:
    """The NIC's subnet (the primary configuration's) and its configurations in the model's input
    form (``NetworkInterface(ip_configurations=...)``, which refuses none or several primaries).
    All of them are in the NIC's subnet: a secondary configuration without a subnet takes it."""
    props = [c.obj("properties") for c in configs]
    primary = primary_config(configs)
    ref = require(subnet_ref(topo, primary, "subnet"), f"{primary.path}.subnet.id")
    out = []
    for i, (config, p) in enumerate(zip(configs, props, strict=True)):
        config_name = config.str("name") or (PRIMARY_IP_CONFIGURATION if i == 0 else f"ipconfig{i + 1}")
        other = subnet_ref(topo, p, "subnet")
        if other is not None and other.lower() != ref.lower():
            # https://learn.microsoft.com/azure/virtual-network/ip-services/virtual-network-multiple-ip-addresses-portal
            raise bad_request(f"IP configuration {config_name} of network interface {name} is in subnet {other}, "
                              f"but the primary IP configuration is in {ref}: all the IP configurations of a "
                              "network interface are in one subnet (vnetlab's rule and code).",
                              "IpConfigurationsMustBeInSameSubnet")
        ip = p.str("privateIPAddress")
        method = (p.str("privateIPAllocationMethod") or ("Static" if ip else "Dynamic")).capitalize()
        out.append({"name": config_name, "private_ip_address": ip,
                    "private_ip_allocation_method": method,
                    "primary": p.bool("primary", False) or len(configs) == 1})
    return ref, out


def nic_from_wire(topo: Topology, body: Obj, current, rg: str, name: str) -> NetworkInterface:
    props = body.obj("properties")
    configs = props.objs("ipConfigurations")
    if not configs:
        raise bad_request(f"Network interface {name} must have one IP configuration in properties.ipConfigurations.",
                          "NetworkInterfaceMustHaveIpConfiguration")
    ref, ip_configurations = ip_configurations_from_wire(topo, configs, name)
    return NetworkInterface(name=name, resource_group=rg, tags=_tags(body), subnet=ref,
                            ip_configurations=ip_configurations,
                            enable_ip_forwarding=props.bool("enableIPForwarding", False),
                            dns_servers=props.obj("dnsSettings").strs("dnsServers"),
                            private_endpoint=current.private_endpoint if current else None,
                            public_ip_address=ref_name(topo, primary_config(configs), "publicIPAddress",
                                                       "public_ip_addresses", "publicIPAddresses"),
                            network_security_group=ref_name(topo, props, "networkSecurityGroup",
                                                            "network_security_groups", "networkSecurityGroups"),
                            location=location_of(body, f"{NS}/networkInterfaces",
                                                 current and topo.location_of(current)))


# -- the types ---------------------------------------------------------------------------------

VNETS = TopLevel("virtual_networks", NS, "virtualNetworks", vnet_wire, vnet_from_wire,
                 remove=delete_vnet)
SUBNETS = Child(VNETS, "subnets", lambda v: v.subnets, subnet_wire, subnet_from_wire)
PEERINGS = Child(VNETS, "virtualNetworkPeerings", lambda v: v.peerings, peering_wire, peering_from_wire)
NSGS = TopLevel("network_security_groups", NS, "networkSecurityGroups", nsg_wire, nsg_from_wire,
                to_wire_many=nsg_wires)
RULES = Child(NSGS, "securityRules", lambda n: n.security_rules, rule_wire, rule_from_wire)
ROUTE_TABLES = TopLevel("route_tables", NS, "routeTables", route_table_wire, route_table_from_wire,
                        to_wire_many=subnet_users_wires("route_table", route_table_wire))
ROUTES = Child(ROUTE_TABLES, "routes", lambda t: t.routes, route_wire, route_from_wire)
NICS = TopLevel("network_interfaces", NS, "networkInterfaces", nic_wire, nic_from_wire)


def default_rule(call, state: LabState):
    """GET .../networkSecurityGroups/{nsg}/defaultSecurityRules[/{rule}]"""
    from .arm import list_response, resource_response
    topo, nsg = NSGS.lookup(state, call)
    rules = [rule_wire(topo, nsg, r, "defaultSecurityRules") for r in DEFAULT_SECURITY_RULES]
    if "child" not in call.params:
        return list_response(rules)
    rule = next((r for r in rules if r["name"].lower() == call.params["child"].lower()), None)
    if rule is None:
        raise RULES.not_found(topo, nsg, call.params["child"])
    return resource_response(rule)


def router(state: LabState) -> Router:
    r = Router()
    for kind in (VNETS, SUBNETS, PEERINGS, NSGS, RULES, ROUTE_TABLES, ROUTES, NICS):
        kind.register(r, state)
    base = "subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Network/networkSecurityGroups/{name}"
    r.add("GET", f"{base}/defaultSecurityRules", lambda call: default_rule(call, state), blocking=True)
    r.add("GET", f"{base}/defaultSecurityRules/{{child}}", lambda call: default_rule(call, state), blocking=True)
    return r
