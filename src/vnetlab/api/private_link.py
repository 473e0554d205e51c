"""The target side of Private Link: each storage account, SQL server, key vault and web app answers
``privateEndpointConnections`` (the owner approves, rejects or deletes a connection: what ``az network
private-endpoint-connection approve|reject|delete|show|list`` does) and ``privateLinkResources`` (its
group ids and the zone each wants: ``az network private-link-resource list``).

A connection's state is the endpoint's ``connection_state``: approving a Pending connection lets the
endpoint pass traffic; deleting the connection leaves the endpoint Disconnected.
https://learn.microsoft.com/azure/private-link/manage-private-endpoint
"""

from __future__ import annotations

from starlette.responses import Response

from ..engine.dns import public_names
from ..model import Topology
from ..model.errors import NotFound
from ..model.ids import TYPES
from ..model.paas import GROUP_IDS
from .arm import Call, Router, bad_request, json_response, resource_response
from .paas_common import endpoint_connections
from .state import LabState, Obj, require, require_resource

STATES = ("Approved", "Pending", "Rejected", "Disconnected")


def _target(topo: Topology, kind: str, call: Call):
    return require_resource(topo, kind, call.params["rg"], call.params["name"])


def _connection(topo: Topology, kind: str, res, name: str) -> tuple[dict, object]:
    """(the connection's wire form, its private endpoint), by the connection's name or the endpoint's."""
    low = name.lower()
    for wire, pe in zip(endpoint_connections(topo, kind, res), topo.private_endpoints_to(kind, res.name),
                        strict=True):
        if low in (wire["name"].lower(), pe.name.lower()):
            return wire, pe
    raise NotFound(f"Private endpoint connection '{name}' of {topo.id_of(kind, res)} was not found.")


def private_link_resources(topo: Topology, kind: str, res) -> list[dict]:
    """Each group id of the target with the private DNS zone it wants (the zone of its privatelink name)."""
    zones = {group: privatelink.split(".", 1)[1] for _, group, privatelink, _ in public_names(topo, kind, res)}
    rid = topo.id_of(kind, res)
    namespace, type_ = TYPES[kind]
    return [{"id": f"{rid}/privateLinkResources/{g}", "name": g, "type": f"{namespace}/{type_}/privateLinkResources",
             "properties": {"groupId": g, "requiredMembers": [g],
                            "requiredZoneNames": [zones[g]] if g in zones else []}}
            for g in GROUP_IDS[kind]]


def handlers(state: LabState, kind: str):
    def list_connections(call: Call) -> Response:
        topo = state.read()
        return json_response({"value": endpoint_connections(topo, kind, _target(topo, kind, call))})

    def get_connection(call: Call) -> Response:
        topo = state.read()
        return resource_response(_connection(topo, kind, _target(topo, kind, call), call.params["conn"])[0])

    def set_state(call: Call, status: str | None) -> Response:
        def change(topo: Topology) -> None:
            pe = _connection(topo, kind, _target(topo, kind, call), call.params["conn"])[1]
            pe.connection_state = status

        topo = state.change(change)
        return resource_response(_connection(topo, kind, _target(topo, kind, call), call.params["conn"])[0])

    def put_connection(call: Call) -> Response:
        body = Obj(call.resource_body(), "").obj("properties").obj("privateLinkServiceConnectionState")
        status = require(body.str("status"), "properties.privateLinkServiceConnectionState.status")
        canon = next((s for s in STATES if s.lower() == status.lower()), None)
        if canon is None:
            raise bad_request(f"Private endpoint connection status '{status}' is not valid: use "
                              f"{', '.join(STATES)}.", "InvalidPrivateEndpointConnectionStatus")
        return set_state(call, canon)

    def delete_connection(call: Call) -> Response:
        set_state(call, "Disconnected")  # the endpoint stays, Disconnected
        return Response(status_code=200)

    def list_resources(call: Call) -> Response:
        topo = state.read()
        return json_response({"value": private_link_resources(topo, kind, _target(topo, kind, call))})

    return list_connections, get_connection, put_connection, delete_connection, list_resources


def router(state: LabState) -> Router:
    r = Router()
    for kind in GROUP_IDS:
        namespace, type_ = TYPES[kind]
        base = f"subscriptions/{{sub}}/resourcegroups/{{rg}}/providers/{namespace}/{type_}/{{name}}"
        list_connections, get_connection, put_connection, delete_connection, list_resources = handlers(state, kind)
        r.add("GET", f"{base}/privateEndpointConnections", list_connections, blocking=True)
        r.add("GET", f"{base}/privateEndpointConnections/{{conn}}", get_connection)
        r.add("PUT", f"{base}/privateEndpointConnections/{{conn}}", put_connection, blocking=True)
        r.add("DELETE", f"{base}/privateEndpointConnections/{{conn}}", delete_connection, blocking=True)
        r.add("GET", f"{base}/privateLinkResources", list_resources, blocking=True)
    return r
