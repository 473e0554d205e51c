"""Microsoft.Network/privateDnsZones with their virtualNetworkLinks and A and CNAME record sets.

Shapes of the 2024-06-01 REST reference (az sends 2018-09-01 for zones and record sets, 2024-06-01
for links; any api-version is accepted): a zone's location is ``global``; record-set names are
answered lower-cased and their ``fqdn`` ends with a dot; a link is ``Completed`` at once.
https://learn.microsoft.com/rest/api/dns/privatednszones
https://learn.microsoft.com/azure/dns/private-dns-privatednszone
"""

from __future__ import annotations

from starlette.responses import Response

from ..engine.dns import zone_records
from ..model import Topology
from ..model.dns import RECORD_TYPES, PrivateDnsZone, RecordSet, VirtualNetworkLink
from ..model.errors import NotFound
from .arm import (Call, Router, bad_request, check_preconditions, conditional, list_response,
                  not_modified, resource_response)
from .network import NS, ref_id, ref_name
from .resource import Child, TopLevel, envelope, merge, replace_or_append
from .state import LabState, Obj, guid, require

ZONE_TYPE = f"{NS}/privateDnsZones"
GLOBAL = "global"
# https://learn.microsoft.com/azure/dns/private-dns-privatednszone#restrictions (limits)
LIMITS = {"maxNumberOfRecordSets": 25000, "maxNumberOfVirtualNetworkLinks": 1000,
          "maxNumberOfVirtualNetworkLinksWithRegistration": 100}


def global_location(body: Obj, type_: str) -> None:
    """Private DNS resources live in location ``global`` and nowhere else."""
    value = body.str("location")
    if value is not None and value.replace(" ", "").lower() != GLOBAL:
        raise bad_request(f"The provided location '{value}' is not available for resource type '{type_}'. "
                          f"List of available regions for the resource type is '{GLOBAL}'.",
                          "LocationNotAvailableForResourceType")


# -- zones -------------------------------------------------------------------------------------

def zone_wire(topo: Topology, zone: PrivateDnsZone) -> dict:
    rid = topo.id_of("private_dns_zones", zone)
    links = zone.virtual_network_links
    props = {**LIMITS,
             # Azure counts the zone's SOA record set, which every zone has
             "numberOfRecordSets": len(record_sets(topo, zone)) + 1,
             "numberOfVirtualNetworkLinks": len(links),
             "numberOfVirtualNetworkLinksWithRegistration": sum(k.registration_enabled for k in links),
             "internalId": guid(rid), "provisioningState": "Succeeded"}
    return envelope(rid, zone.name, ZONE_TYPE, GLOBAL, zone.tags, props)


def zone_from_wire(topo: Topology, body: Obj, current: PrivateDnsZone | None, rg: str, name: str) -> PrivateDnsZone:
    """A zone's PUT carries neither record sets nor links (child resources): the zone keeps its own."""
    global_location(body, ZONE_TYPE)
    return PrivateDnsZone(name=name, resource_group=rg, tags=dict(body.obj("tags").data),
                          records=list(current.records) if current else [],
                          virtual_network_links=list(current.virtual_network_links) if current else [])


# -- virtual network links ---------------------------------------------------------------------

def link_wire(topo: Topology, zone: PrivateDnsZone, link: VirtualNetworkLink) -> dict:
    rid = topo.id_of("private_dns_zones", zone, "virtualNetworkLinks", link.name)
    props = {"virtualNetwork": {"id": ref_id(topo, "virtual_networks", link.virtual_network)},
             "registrationEnabled": link.registration_enabled, "resolutionPolicy": link.resolution_policy,
             "virtualNetworkLinkState": "Completed", "provisioningState": "Succeeded"}
    return envelope(rid, link.name, f"{ZONE_TYPE}/virtualNetworkLinks", GLOBAL, link.tags, props)


def link_from_wire(topo: Topology, body: Obj, zone: PrivateDnsZone, current, name: str) -> VirtualNetworkLink:
    global_location(body, f"{ZONE_TYPE}/virtualNetworkLinks")
    props = body.obj("properties")
    vnet = ref_name(topo, props, "virtualNetwork", "virtual_networks", "virtualNetworks")
    require(vnet, "properties.virtualNetwork.id")
    return VirtualNetworkLink(name=name, virtual_network=vnet, tags=dict(body.obj("tags").data),
                              registration_enabled=props.bool("registrationEnabled", False),
                              resolution_policy=props.str("resolutionPolicy", "Default"))


ZONES = TopLevel("private_dns_zones", NS, "privateDnsZones", zone_wire, zone_from_wire)
LINKS = Child(ZONES, "virtualNetworkLinks", lambda z: z.virtual_network_links, link_wire, link_from_wire)


# -- record sets -------------------------------------------------------------------------------

def record_sets(topo: Topology, zone: PrivateDnsZone) -> list[RecordSet]:
    """The zone's record sets as Azure lists them: those written (by hand), those its private endpoints'
    zone groups write, and those a registration link writes for the VMs of its VNet (the engine's)."""
    return zone_records(topo, zone)


def record_type(value: str) -> str:
    up = value.upper()
    if up not in RECORD_TYPES:
        raise bad_request(f"Record type {value} is not supported in the lab: it holds {' and '.join(RECORD_TYPES)} "
                          "record sets only.", "UnsupportedRecordType")
    return up


def record_wire(topo: Topology, zone: PrivateDnsZone, rs: RecordSet) -> dict:
    rid = topo.id_of("private_dns_zones", zone, rs.type, rs.name)
    props: dict = {"ttl": rs.ttl, "fqdn": rs.fqdn(zone.name) + ".", "isAutoRegistered": rs.is_auto_registered}
    if rs.type == "A":
        props["aRecords"] = [{"ipv4Address": ip} for ip in rs.values]
    else:
        props["cnameRecord"] = {"cname": rs.values[0]}
    return {"id": rid, "name": rs.name, "type": f"{ZONE_TYPE}/{rs.type}", "etag": guid(rid + repr(rs)),
            "properties": props}


def zone_group_record(zone: PrivateDnsZone, rs: RecordSet) -> dict:
    """The record set as a private endpoint's zone group lists it (``privateDnsZoneConfigs[].recordSets``):
    the other face of ``record_wire``, its FQDN without the final dot as Azure writes it there."""
    return {"recordType": rs.type, "recordSetName": rs.name, "fqdn": rs.fqdn(zone.name), "ttl": rs.ttl,
            "ipAddresses": list(rs.values), "provisioningState": "Succeeded"}


def record_from_wire(body: Obj, type_: str, name: str) -> RecordSet:
    props = body.obj("properties")
    if type_ == "A":
        values = [require(a.str("ipv4Address"), f"{a.path}.ipv4Address") for a in props.objs("aRecords")]
    else:
        values = [require(props.obj("cnameRecord").str("cname"), "properties.cnameRecord.cname")]
    return RecordSet(name=name, type=type_, values=values, ttl=props.int("ttl", 3600))


class RecordSets:
    """``privateDnsZones/{zone}/{A|CNAME}/{name}``: record sets are keyed by type and name."""

    @staticmethod
    def _find(items: list[RecordSet], type_: str, name: str) -> RecordSet | None:
        low = name.lower()
        return next((r for r in items if r.type == type_ and r.name == low), None)

    def _missing(self, topo: Topology, zone: PrivateDnsZone, type_: str, name: str) -> NotFound:
        return NotFound(f"The resource record '{name}' does not exist in resource group '{topo.rg_of(zone)}' of "
                        f"subscription '{topo.subscription_id}'.")

    def get(self, state: LabState, call: Call) -> Response:
        topo = state.read()
        zone, type_ = ZONES.existing(topo, call), record_type(call.params["rtype"])
        rs = self._find(record_sets(topo, zone), type_, call.params["rs"])
        if rs is None:
            raise self._missing(topo, zone, type_, call.params["rs"])
        wire = record_wire(topo, zone, rs)
        return Response(status_code=304) if not_modified(call.headers, wire) else resource_response(wire)

    def list_(self, state: LabState, call: Call) -> Response:
        topo = state.read()
        zone = ZONES.existing(topo, call)
        kind = call.params.get("rtype", "ALL")
        wanted = None if kind.lower() in ("all", "recordsets") else record_type(kind)
        return list_response(record_wire(topo, zone, r) for r in record_sets(topo, zone)
                             if wanted is None or r.type == wanted)

    def put(self, state: LabState, call: Call, patch: bool = False) -> Response:
        body, type_ = Obj(call.resource_body(), ""), record_type(call.params["rtype"])
        name = call.params["rs"].rstrip(".").lower() or "@"
        created: list[bool] = []

        def change(topo: Topology) -> None:
            zone = ZONES.existing(topo, call)
            current = self._find(zone.records, type_, name)
            if conditional(call.headers):
                check_preconditions(call.headers, record_wire(topo, zone, current) if current else None)
            if patch and current is None:
                raise self._missing(topo, zone, type_, name)
            source = body
            if patch:
                source = Obj(merge(record_wire(topo, zone, current), body.data), "")
            new = record_from_wire(source, type_, name)
            replace_or_append(zone.records, current, new)
            created.append(current is None)

        topo = state.change(change)
        zone = ZONES.existing(topo, call)
        return resource_response(record_wire(topo, zone, self._find(zone.records, type_, name)),
                                 201 if created[0] else 200)

    def delete(self, state: LabState, call: Call) -> Response:
        type_, name = record_type(call.params["rtype"]), call.params["rs"].rstrip(".").lower() or "@"
        gone: list[bool] = []

        def change(topo: Topology) -> None:
            zone = ZONES.existing(topo, call)
            current = self._find(zone.records, type_, name)
            if conditional(call.headers):
                check_preconditions(call.headers, record_wire(topo, zone, current) if current else None)
            if current is not None:
                zone.records.remove(current)
            gone.append(current is not None)

        state.change(change)
        return Response(status_code=200 if gone[0] else 204)

    def register(self, r: Router, state: LabState) -> None:
        base = f"subscriptions/{{sub}}/resourcegroups/{{rg}}/providers/{NS}/privateDnsZones/{{name}}"
        r.add("GET", f"{base}/{{rtype}}/{{rs}}", lambda call: self.get(state, call))
        r.add("PUT", f"{base}/{{rtype}}/{{rs}}", lambda call: self.put(state, call), blocking=True)
        r.add("PATCH", f"{base}/{{rtype}}/{{rs}}", lambda call: self.put(state, call, patch=True), blocking=True)
        r.add("DELETE", f"{base}/{{rtype}}/{{rs}}", lambda call: self.delete(state, call), blocking=True)
        r.add("GET", f"{base}/{{rtype}}", lambda call: self.list_(state, call), blocking=True)


RECORDS = RecordSets()


def router(state: LabState) -> Router:
    r = Router()
    for kind in (ZONES, LINKS, RECORDS):
        kind.register(r, state)
    return r
