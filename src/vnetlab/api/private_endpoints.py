"""Microsoft.Network/privateEndpoints and their privateDnsZoneGroups.

A private endpoint is a read-only NIC in a subnet (the lab creates and removes it with the
endpoint; it is listed with the network interfaces) reaching one sub-resource (``groupIds``) of a
storage account, SQL server, key vault or web app. An automatic connection
(``privateLinkServiceConnections``) is Approved, a manual one
(``manualPrivateLinkServiceConnections``) Pending until the target's owner decides. A zone group
makes Azure write the target's A record in each of its private DNS zones, and remove it with the
endpoint. Shapes of the 2024-05-01 REST reference.
https://learn.microsoft.com/rest/api/virtualnetwork/private-endpoints
https://learn.microsoft.com/azure/private-link/private-endpoint-overview
https://learn.microsoft.com/azure/private-link/private-endpoint-dns-integration
"""

from __future__ import annotations

from starlette.responses import Response

from ..engine.dns import public_names
from ..model import Topology
from ..model.errors import NotFound
from ..model.paas import PrivateEndpoint
from .arm import Call, Router, bad_request, check_preconditions, conditional, list_response, not_modified, resource_response
from .network import NS, subnet_ref
from .paas_common import connection_state, target_id
from .privatedns import record_sets, zone_group_record
from .resource import TopLevel, envelope, location_of
from .state import LabState, Obj, guid, parse_ref, require

TYPE = f"{NS}/privateEndpoints"
ZONE_GROUP = "default"


def service_fqdns(topo: Topology, kind: str, resource, group_id: str) -> list[str]:
    """The public names the endpoint's sub-resource answers on (customDnsConfigs), as the engine names them.
    https://learn.microsoft.com/azure/private-link/private-endpoint-dns#azure-services-dns-zone-configuration"""
    group = group_id.split("-")[0] if kind == "web_apps" else group_id
    return [fqdn for fqdn, g, _, _ in public_names(topo, kind, resource) if g == group]


def connection_wire(topo: Topology, pe: PrivateEndpoint, rid: str, manual: bool) -> dict:
    segment = "manualPrivateLinkServiceConnections" if manual else "privateLinkServiceConnections"
    return {"name": pe.name, "id": f"{rid}/{segment}/{pe.name}", "type": f"{TYPE}/{segment}",
            "properties": {"provisioningState": "Succeeded", "privateLinkServiceId": target_id(topo, pe),
                           "groupIds": [pe.group_id], "requestMessage": "" if not manual else "Please approve.",
                           "privateLinkServiceConnectionState": connection_state(pe)}}


def endpoint_wire(topo: Topology, pe: PrivateEndpoint) -> dict:
    rid = topo.id_of("private_endpoints", pe)
    ip = topo.private_endpoint_ip(pe)
    nic = topo.private_endpoint_nic(pe)
    manual = pe.connection_state == "Pending"
    target = topo.private_link_target(pe)
    fqdns = service_fqdns(topo, target[0], target[1], pe.group_id) if target else []
    props = {"provisioningState": "Succeeded", "resourceGuid": guid(rid),
             "subnet": {"id": topo.subnet_id(pe.subnet)},
             "privateLinkServiceConnections": [] if manual else [connection_wire(topo, pe, rid, False)],
             "manualPrivateLinkServiceConnections": [connection_wire(topo, pe, rid, True)] if manual else [],
             "customNetworkInterfaceName": pe.custom_network_interface_name or "",
             "networkInterfaces": [{"id": topo.id_of("network_interfaces", nic)}] if nic else [],
             "ipConfigurations": [{"name": f"{pe.name}-ipconfig", "properties": {
                 "groupId": pe.group_id, "memberName": pe.group_id, "privateIPAddress": pe.private_ip_address}}]
             if pe.private_ip_address else [],
             "customDnsConfigs": [{"fqdn": f, "ipAddresses": [ip]} for f in fqdns] if ip else [],
             "ipVersionType": "IPv4"}
    return envelope(rid, pe.name, TYPE, topo.location_of(pe), pe.tags, props)


def lab_name(topo: Topology, target: str) -> str:
    """A target id naming a resource of the lab is kept as its name, as a topology file writes it
    (the lab's names are unique per kind); any other id is kept as given, for validation to judge."""
    found = topo.private_link_target(PrivateEndpoint.model_construct(target=target))
    if found is None or topo.id_of(*found).lower() != target.lower():
        return target
    return found[1].name


def _connection(props: Obj) -> tuple[Obj, bool]:
    """The endpoint's one connection, and whether it is a manual one."""
    auto, manual = props.objs("privateLinkServiceConnections"), props.objs("manualPrivateLinkServiceConnections")
    if not auto and not manual:
        require(None, "properties.privateLinkServiceConnections")
    return (auto or manual)[0].obj("properties"), not auto


def endpoint_from_wire(topo: Topology, body: Obj, current: PrivateEndpoint | None, rg: str,
                       name: str) -> PrivateEndpoint:
    props = body.obj("properties")
    subnet = require(subnet_ref(topo, props, "subnet"), "properties.subnet.id")
    conn, manual = _connection(props)
    target = require(conn.str("privateLinkServiceId"), f"{conn.path}.privateLinkServiceId")
    group_id = require(next(iter(conn.strs("groupIds")), None), f"{conn.path}.groupIds")
    target = lab_name(topo, target)
    same = current is not None and current.target.lower() == target.lower() and current.group_id == group_id
    # the connection's state is the target owner's decision: a new connection starts Approved
    # (automatic) or Pending (manual); a PUT of the same connection keeps it
    state = current.connection_state if same else ("Pending" if manual else "Approved")
    configs = props.objs("ipConfigurations")
    ip = configs[0].obj("properties").str("privateIPAddress") if configs else None
    return PrivateEndpoint(name=name, resource_group=rg, tags=dict(body.obj("tags").data), subnet=subnet,
                           location=location_of(body, TYPE, current and topo.location_of(current)),
                           target=target, group_id=group_id, connection_state=state, private_ip_address=ip,
                           custom_network_interface_name=props.str("customNetworkInterfaceName")
                           or (current.custom_network_interface_name if current else None),
                           private_dns_zone_group=list(current.private_dns_zone_group) if current else [])


ENDPOINTS = TopLevel("private_endpoints", NS, "privateEndpoints", endpoint_wire, endpoint_from_wire)


# -- privateDnsZoneGroups ------------------------------------------------------------------------

def zone_group_wire(topo: Topology, pe: PrivateEndpoint) -> dict:
    rid = topo.id_of("private_endpoints", pe, "privateDnsZoneGroups", ZONE_GROUP)
    ip = topo.private_endpoint_ip(pe)
    configs = []
    for zone_name in pe.private_dns_zone_group:
        zone = topo.find("private_dns_zones", zone_name)
        records = [r for r in record_sets(topo, zone) if r.type == "A" and ip in r.values] if zone else []
        configs.append({"name": zone_name.replace(".", "-"), "id": f"{rid}/privateDnsZoneConfigs/{zone_name}",
                        "properties": {"privateDnsZoneId": topo.id_of("private_dns_zones", zone) if zone else zone_name,
                                       "recordSets": [zone_group_record(zone, r) for r in records]}})
    return envelope(rid, ZONE_GROUP, f"{TYPE}/privateDnsZoneGroups", None, None,
                    {"provisioningState": "Succeeded", "privateDnsZoneConfigs": configs})


def zone_names_from_wire(topo: Topology, body: Obj) -> list[str]:
    names = []
    for item in body.obj("properties").objs("privateDnsZoneConfigs"):
        path = f"{item.path}.properties.privateDnsZoneId".lstrip(".")
        rid = require(item.obj("properties").str("privateDnsZoneId"), path)
        names.append(parse_ref(rid, NS, ("privateDnsZones",), path, topo)[0])
    return names


class ZoneGroups:
    """``privateEndpoints/{pe}/privateDnsZoneGroups/default``: one group per endpoint (Azure's limit),
    of up to five zones. The lab names it ``default``, as the portal does."""

    @staticmethod
    def _has(pe: PrivateEndpoint, name: str) -> bool:
        return bool(pe.private_dns_zone_group) and name.lower() == ZONE_GROUP

    def _missing(self, topo: Topology, pe: PrivateEndpoint, name: str) -> NotFound:
        return NotFound(f"Resource {topo.id_of('private_endpoints', pe)}/privateDnsZoneGroups/{name} not found.")

    def get(self, state: LabState, call: Call) -> Response:
        topo = state.read()
        pe = ENDPOINTS.existing(topo, call)
        if not self._has(pe, call.params["child"]):
            raise self._missing(topo, pe, call.params["child"])
        wire = zone_group_wire(topo, pe)
        return Response(status_code=304) if not_modified(call.headers, wire) else resource_response(wire)

    def list_(self, state: LabState, call: Call) -> Response:
        topo = state.read()
        pe = ENDPOINTS.existing(topo, call)
        return list_response([zone_group_wire(topo, pe)] if pe.private_dns_zone_group else [])

    def put(self, state: LabState, call: Call) -> Response:
        body, name = Obj(call.resource_body(), ""), call.params["child"]
        created: list[bool] = []

        def change(topo: Topology) -> None:
            pe = ENDPOINTS.existing(topo, call)
            had = self._has(pe, ZONE_GROUP)
            if conditional(call.headers):
                check_preconditions(call.headers, zone_group_wire(topo, pe) if had else None)
            if name.lower() != ZONE_GROUP:
                raise bad_request(f"The lab names a private endpoint's one DNS zone group '{ZONE_GROUP}' (as the "
                                  f"portal does): use -n {ZONE_GROUP} instead of '{name}'.", "InvalidResourceName")
            pe.private_dns_zone_group = zone_names_from_wire(topo, body)
            created.append(not had)

        topo = state.change(change)
        return resource_response(zone_group_wire(topo, ENDPOINTS.existing(topo, call)), 201 if created[0] else 200)

    def delete(self, state: LabState, call: Call) -> Response:
        gone: list[bool] = []

        def change(topo: Topology) -> None:
            pe = ENDPOINTS.existing(topo, call)
            had = self._has(pe, call.params["child"])
            if had:
                pe.private_dns_zone_group = []
            gone.append(had)

        state.change(change)
        return Response(status_code=200 if gone[0] else 204)

    def register(self, r: Router, state: LabState) -> None:
        base = f"subscriptions/{{sub}}/resourcegroups/{{rg}}/providers/{NS}/privateEndpoints/{{name}}/privateDnsZoneGroups"
        r.add("GET", f"{base}/{{child}}", lambda call: self.get(state, call))
        r.add("PUT", f"{base}/{{child}}", lambda call: self.put(state, call), blocking=True)
        r.add("DELETE", f"{base}/{{child}}", lambda call: self.delete(state, call), blocking=True)
        r.add("GET", base, lambda call: self.list_(state, call), blocking=True)


ZONE_GROUPS = ZoneGroups()


def router(state: LabState) -> Router:
    r = Router()
    ENDPOINTS.register(r, state)
    ZONE_GROUPS.register(r, state)
    return r
