"""Microsoft.Resources across types: ``az resource list`` and ``az group export``.

- ``GET /subscriptions/{sub}/resources`` and ``.../resourceGroups/{rg}/resources``, with the
  ``$filter`` az builds (``resourceGroup``, ``resourceType``, ``name``, ``location``, ``tagname``)
  https://learn.microsoft.com/rest/api/resources/resources/list
- ``POST .../resourceGroups/{rg}/exportTemplate``: the group as an ARM template without
  parameters, which ``az deployment group create`` deploys back
  https://learn.microsoft.com/rest/api/resources/resource-groups/export-template

``az resource show --ids`` needs nothing here: it GETs the id itself.
"""

from __future__ import annotations

import copy
import re
from typing import Any, Callable

from starlette.responses import Response

from ..model import Topology
from ..model.ids import parse_id
from .arm import ArmError, Call, Router, json_response
from .compute import VMS
from .gateways import CONNECTIONS, GATEWAYS, LOCAL_GATEWAYS
from .groups import NETWORK_WATCHER_RG, existing_group
from .keyvault import VAULTS
from .network import NICS, NSGS, PEERINGS, ROUTE_TABLES, VNETS
from .private_endpoints import ENDPOINTS, zone_group_wire
from .privatedns import LINKS, ZONES, record_wire
from .public_ips import NAT_GATEWAYS, PREFIXES, PUBLIC_IPS
from .sql import FIREWALL_RULES, SERVERS, VNET_RULES
from .state import LabState
from .storage import ACCOUNTS
from .web import PLANS, SITES

# In dependency order: what a resource refers to comes before it in an exported template.
TYPES = (NSGS, ROUTE_TABLES, PUBLIC_IPS, PREFIXES, NAT_GATEWAYS, VNETS, NICS, VMS, PLANS, SITES, ACCOUNTS, SERVERS,
         VAULTS, ZONES, ENDPOINTS, GATEWAYS, LOCAL_GATEWAYS, CONNECTIONS)
API_VERSIONS = {"Microsoft.Network": "2024-07-01", "Microsoft.Compute": "2024-07-01", "Microsoft.Web": "2024-11-01",
                "Microsoft.Storage": "2023-05-01", "Microsoft.Sql": "2021-11-01", "Microsoft.KeyVault": "2023-07-01"}
# types whose RP has versions of its own (Private DNS is a separate RP inside Microsoft.Network)
TYPE_API_VERSIONS = {"Microsoft.Network/privateDnsZones": "2024-06-01"}


# -- az resource list ---------------------------------------------------------------------------

def watchers(topo: Topology) -> list[dict]:
    """The Network Watchers Azure enables in each region where the lab has a VNet."""
    regions = sorted({topo.location_of(v) for v in topo.virtual_networks})
    return [{"id": f"/subscriptions/{topo.subscription_id}/resourceGroups/{NETWORK_WATCHER_RG}/providers/"
                   f"Microsoft.Network/networkWatchers/NetworkWatcher_{r}",
             "name": f"NetworkWatcher_{r}", "type": "Microsoft.Network/networkWatchers", "location": r}
            for r in regions]


def generic(wire: dict) -> dict:
    """A resource as the resources list shows it (GenericResourceExpanded): no properties."""
    out = {k: wire[k] for k in ("id", "name", "type", "kind", "location", "sku", "tags") if k in wire}
    rid = parse_id(out["id"])
    out["resourceGroup"] = rid.resource_group if rid else None
    out["provisioningState"] = "Succeeded"
    return out


def all_resources(topo: Topology) -> list[dict]:
    items = [generic(t.to_wire(topo, r)) for t in TYPES for r in getattr(topo, t.kind)]
    return items + [{**w, "resourceGroup": NETWORK_WATCHER_RG, "provisioningState": "Succeeded"}
                    for w in watchers(topo)]


_CLAUSE = re.compile(r"^\s*(?:(\w+)\s+eq\s+'((?:[^']|'')*)'|startswith\(\s*(\w+)\s*,\s*'((?:[^']|'')*)'\s*\))\s*$",
                     re.IGNORECASE)
_FIELDS: dict[str, Callable[[dict], list[str]]] = {
    "resourcegroup": lambda r: [r.get("resourceGroup") or ""],
    "resourcetype": lambda r: [r["type"]],
    "name": lambda r: [r["name"]],
    "location": lambda r: [r.get("location") or ""],
    "tagname": lambda r: list((r.get("tags") or {}).keys()),
    "tagvalue": lambda r: list((r.get("tags") or {}).values()),
}


def parse_filter(text: str) -> list[Callable[[dict], bool]]:
    """The OData ``$filter`` az sends: clauses joined by ``and``, each ``field eq 'value'`` or
    ``startswith(field, 'value')``, compared without regard to case."""
    tests = []
    for clause in filter(None, re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE)):
        m = _CLAUSE.match(clause)
        field = (m.group(1) or m.group(3)).lower() if m else None
        if field not in _FIELDS:
            raise ArmError(400, "InvalidFilterInQueryString",
                           f"The filter '{text}' is not supported: use resourceGroup, resourceType, name, location, "
                           "tagname or tagvalue with 'eq', or startswith(tagname, '...').")
        value = (m.group(2) if m.group(1) else m.group(4)).replace("''", "'").lower()
        starts = m.group(3) is not None
        get = _FIELDS[field]
        tests.append(lambda r, get=get, value=value, starts=starts:
                     any(v.lower().startswith(value) if starts else v.lower() == value for v in get(r)))
    return tests


def list_resources(state: LabState, call: Call) -> Response:
    topo = state.read()
    tests = parse_filter(call.request.query_params.get("$filter", ""))
    if "rg" in call.params:
        low = existing_group(topo, call.params["rg"]).name.lower()
        tests.append(lambda r: (r.get("resourceGroup") or "").lower() == low)
    return json_response({"value": [r for r in all_resources(topo) if all(t(r) for t in tests)]})


# -- az group export ------------------------------------------------------------------------------

# Read-only properties (readOnly in the REST specs) that a template must not carry, per type;
# "a.b" is a nested path and "a[].b" one inside each item of a list.
_READ_ONLY_COMMON = ("provisioningState", "resourceGuid")
_READ_ONLY = {
    "Microsoft.Network/virtualNetworks": ("virtualNetworkPeerings", "subnets[].properties.ipConfigurations",
                                          "subnets[].properties.privateEndpoints",
                                          "subnets[].properties.serviceAssociationLinks",
                                          "subnets[].properties.provisioningState",
                                          "subnets[].properties.delegations[].properties.provisioningState",
                                          "subnets[].properties.delegations[].properties.actions"),
    "Microsoft.Network/networkSecurityGroups": ("defaultSecurityRules", "subnets", "networkInterfaces",
                                                "securityRules[].properties.provisioningState"),
    "Microsoft.Network/routeTables": ("subnets", "routes[].properties.provisioningState"),
    "Microsoft.Network/networkInterfaces": ("macAddress", "virtualMachine", "primary", "vnetEncryptionSupported",
                                            "dnsSettings.appliedDnsServers",
                                            "ipConfigurations[].properties.provisioningState"),
    "Microsoft.Network/virtualNetworks/virtualNetworkPeerings": ("peeringState", "peeringSyncLevel",
                                                                 "remoteAddressSpace",
                                                                 "remoteVirtualNetworkAddressSpace"),
    # ipAddress and ipPrefix stay, as Azure's export writes them (the lab's own import keeps them)
    "Microsoft.Network/publicIPAddresses": ("ipConfiguration", "natGateway"),
    "Microsoft.Network/publicIPPrefixes": ("natGateway", "publicIPAddresses"),
    "Microsoft.Network/natGateways": ("subnets",),
    "Microsoft.Compute/virtualMachines": ("vmId", "instanceView"),
    "Microsoft.Network/privateEndpoints": ("networkInterfaces", "customDnsConfigs",
                                           "privateLinkServiceConnections[].properties.provisioningState",
                                           "manualPrivateLinkServiceConnections[].properties.provisioningState"),
    "Microsoft.Network/privateDnsZones": ("numberOfRecordSets", "numberOfVirtualNetworkLinks",
                                          "numberOfVirtualNetworkLinksWithRegistration", "maxNumberOfRecordSets",
                                          "maxNumberOfVirtualNetworkLinks",
                                          "maxNumberOfVirtualNetworkLinksWithRegistration", "internalId"),
    "Microsoft.Network/privateDnsZones/virtualNetworkLinks": ("virtualNetworkLinkState",),
    "Microsoft.Network/privateDnsZones/A": ("fqdn", "isAutoRegistered"),
    "Microsoft.Network/privateDnsZones/CNAME": ("fqdn", "isAutoRegistered"),
    "Microsoft.Network/privateEndpoints/privateDnsZoneGroups": ("privateDnsZoneConfigs[].properties.recordSets",),
    "Microsoft.Storage/storageAccounts": ("primaryEndpoints", "primaryLocation", "statusOfPrimary", "creationTime",
                                          "privateEndpointConnections", "keyCreationTime"),
    "Microsoft.Sql/servers": ("fullyQualifiedDomainName", "state", "privateEndpointConnections"),
    "Microsoft.Sql/servers/virtualNetworkRules": ("state",),
    "Microsoft.KeyVault/vaults": ("vaultUri", "privateEndpointConnections"),
}
# Microsoft.Web answers many read-only properties; a template keeps only the writable ones it uses.
_WRITABLE = {
    "Microsoft.Web/serverfarms": ("reserved", "perSiteScaling", "elasticScaleEnabled", "maximumElasticWorkerCount",
                                  "isSpot", "zoneRedundant", "hyperV", "isXenon"),
    "Microsoft.Web/sites": ("serverFarmId", "enabled", "httpsOnly", "reserved", "siteConfig", "virtualNetworkSubnetId",
                            "vnetRouteAllEnabled", "outboundVnetRouting", "clientAffinityEnabled", "clientCertEnabled",
                            "clientCertMode", "hostNamesDisabled", "publicNetworkAccess", "redundancyMode", "hyperV",
                            "isXenon", "scmSiteAlsoStopped"),
}


def _drop(doc: Any, path: str) -> None:
    head, _, rest = path.partition(".")
    if head.endswith("[]"):
        for item in (doc.get(head[:-2]) or []) if isinstance(doc, dict) else []:
            _drop(item, rest)
    elif isinstance(doc, dict):
        if rest:
            _drop(doc.get(head), rest)
        else:
            doc.pop(head, None)


def _strip_children(value: Any) -> Any:
    """Embedded child resources keep name and properties; their id, etag and type are ARM's."""
    if isinstance(value, list):
        return [_strip_children(v) for v in value]
    if isinstance(value, dict):
        child = "name" in value and "properties" in value
        return {k: _strip_children(v) for k, v in value.items()
                if not (child and k in ("id", "etag", "type")) and v is not None}
    return value


class _Ids:
    """Ids of this group's resources become resourceId() expressions, so the template does not name
    the group; the top-level resources they point at become dependencies."""

    def __init__(self, sub: str, rg: str):
        self.sub, self.rg = sub.lower(), rg.lower()
        self.depends: list[str] = []

    def convert(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: self.convert(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.convert(v) for v in value]
        parsed = parse_id(value) if isinstance(value, str) and value.lower().startswith("/subscriptions/") else None
        if parsed is None or not parsed.types or parsed.subscription.lower() != self.sub \
                or parsed.resource_group.lower() != self.rg:
            return value
        top = resource_id_expr(parsed.namespace, parsed.types[:1], parsed.names[:1])
        if top not in self.depends:
            self.depends.append(top)
        return resource_id_expr(parsed.namespace, parsed.types, parsed.names)


def resource_id_expr(namespace: str, types: tuple[str, ...], names: tuple[str, ...]) -> str:
    quoted = ", ".join(f"'{n}'" for n in names)
    return f"[resourceId('{namespace}/{'/'.join(types)}', {quoted})]"


def template_resource(topo: Topology, wire: dict) -> dict:
    """One resource of the group as a template declares it."""
    wire = copy.deepcopy(wire)
    type_ = wire["type"]
    props = wire.get("properties") or {}
    for key in _READ_ONLY_COMMON + _READ_ONLY.get(type_, ()):
        _drop(props, key)
    if type_ in _WRITABLE:
        props = {k: v for k, v in props.items() if k in _WRITABLE[type_]}
    namespace = type_.split("/")[0]
    ids = _Ids(topo.subscription_id, parse_id(wire["id"]).resource_group)
    version = next((v for t, v in TYPE_API_VERSIONS.items() if type_.startswith(t)), API_VERSIONS[namespace])
    out: dict = {"type": type_, "apiVersion": version, "name": wire_name(wire)}
    for key in ("location", "tags", "kind", "sku", "zones"):
        if wire.get(key):
            out[key] = wire[key]
    out["properties"] = ids.convert(_strip_children(props))
    types, names = tuple(type_.split("/")[1:]), tuple(wire_name(wire).split("/"))
    parent = [resource_id_expr(namespace, types[:1], names[:1])] if len(types) > 1 else []
    self_expr = resource_id_expr(namespace, types, names)
    depends = [d for d in dict.fromkeys(parent + ids.depends) if d != self_expr]
    if depends:
        out["dependsOn"] = depends
    return out


def wire_name(wire: dict) -> str:
    """A child's template name is parent/child."""
    parsed = parse_id(wire["id"])
    return "/".join(parsed.names) if parsed else wire["name"]


def children(topo: Topology, t, res) -> list[dict]:
    """The child resources a template declares apart from their parent: peerings (two peered VNets
    would otherwise depend on each other) and the children a parent's PUT does not carry."""
    if t is VNETS:
        return [PEERINGS.to_wire(topo, res, p) for p in res.peerings]
    if t is ZONES:
        return [LINKS.to_wire(topo, res, k) for k in res.virtual_network_links] + \
            [record_wire(topo, res, r) for r in res.records if not r.is_auto_registered]
    if t is SERVERS:
        return [FIREWALL_RULES.to_wire(topo, res, r) for r in res.firewall_rules] + \
            [VNET_RULES.to_wire(topo, res, r) for r in res.virtual_network_rules]
    if t is ENDPOINTS and res.private_dns_zone_group:
        return [zone_group_wire(topo, res)]
    return []


def export_template(topo: Topology, rg: str) -> dict:
    low = rg.lower()
    resources = []
    for t in TYPES:
        for res in getattr(topo, t.kind):
            if topo.rg_of(res).lower() != low or (t is NICS and res.private_endpoint):
                continue  # a private endpoint's NIC is made by its endpoint
            resources.append(template_resource(topo, t.to_wire(topo, res)))
            resources += [template_resource(topo, child) for child in children(topo, t, res)]
    return {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
            "contentVersion": "1.0.0.0", "parameters": {}, "variables": {}, "resources": resources}


def export(state: LabState, call: Call) -> Response:
    topo = state.read()
    return json_response({"template": export_template(topo, existing_group(topo, call.params["rg"]).name)})


def router(state: LabState) -> Router:
    r = Router()
    r.add("GET", "subscriptions/{sub}/resources", lambda call: list_resources(state, call))
    r.add("GET", "subscriptions/{sub}/resourcegroups/{rg}/resources", lambda call: list_resources(state, call))
    r.add("POST", "subscriptions/{sub}/resourcegroups/{rg}/exportTemplate", lambda call: export(state, call))
    return r
