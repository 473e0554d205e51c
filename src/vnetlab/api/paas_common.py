"""What the PaaS families' wire shapes share: firewall rule lists read from ``networkAcls``, the
private endpoint connections a target resource shows.
https://learn.microsoft.com/azure/private-link/private-endpoint-overview
"""

from __future__ import annotations

from ..model import Topology
from ..model.ids import TYPES
from .network import subnet_of_id
from .state import Obj, guid, require

def subnet_ids_from_wire(topo: Topology, acls: Obj, current: list[str]) -> list[str]:
    """``virtualNetworkRules[].id`` as ``VNET/SUBNET``; the current rules when the member is absent."""
    if "virtualNetworkRules" not in acls:
        return list(current)
    return [subnet_of_id(topo, require(item.str("id"), f"{item.path}.id"), f"{item.path}.id".lstrip("."))
            for item in acls.objs("virtualNetworkRules")]


def ip_rules_from_wire(acls: Obj, current: list[str]) -> list[str]:
    """``ipRules[].value``; the current rules when the member is absent."""
    if "ipRules" not in acls:
        return list(current)
    return [require(item.str("value"), f"{item.path}.value") for item in acls.objs("ipRules")]


def target_id(topo: Topology, pe) -> str:
    found = topo.private_link_target(pe)
    return topo.id_of(found[0], found[1]) if found else pe.target


def connection_state(pe) -> dict:
    """privateLinkServiceConnectionState, as the target's owner set it."""
    description = {"Approved": "Auto-Approved", "Pending": "Awaiting approval"}.get(pe.connection_state, "")
    return {"status": pe.connection_state, "description": description,
            "actionsRequired": "None"}


def endpoint_connections(topo: Topology, kind: str, resource) -> list[dict]:
    """The target side: ``privateEndpointConnections`` of the resource, one per private endpoint."""
    out = []
    for pe in topo.private_endpoints_to(kind, resource.name):
        pe_id = topo.id_of("private_endpoints", pe)
        name = f"{pe.name}.{guid(pe_id)}"
        namespace, type_ = TYPES[kind]
        out.append({"id": f"{topo.id_of(kind, resource)}/privateEndpointConnections/{name}", "name": name,
                    "type": f"{namespace}/{type_}/privateEndpointConnections",
                    "properties": {"provisioningState": "Succeeded", "privateEndpoint": {"id": pe_id},
                                   "groupIds": [pe.group_id],
                                   "privateLinkServiceConnectionState": connection_state(pe)}})
    return out
