"""Microsoft.Resources/resourceGroups, kept in the lab.

Deleting a group deletes what is in it, as in Azure (:func:`vnetlab.lab.delete_group`). A lab
holds exactly the groups its file declares (or its resources use) and those created through the
API; NetworkWatcherRG is there too once the lab has a VNet, as Azure creates it.
https://learn.microsoft.com/rest/api/resources/resource-groups
"""

from __future__ import annotations

import re

from starlette.responses import Response

from ..model.errors import InvalidResourceGroup, LocationRequired
from ..lab import delete_group
from ..model import ResourceGroup, Topology
from .arm import (ArmError, Call, Router, bad_request, check_preconditions, conditional, group_not_found,
                  list_response,
                  not_modified, resource_response)
from .discovery import LOCATIONS, normalize_location
from .resource import replace_or_append
from .state import LabState, Obj

_RG_CHARS = re.compile(r"[^\w\-.()]", re.UNICODE)


def wire(topo: Topology, group: ResourceGroup) -> dict:
    out = {"id": topo.group_id(group.name), "name": group.name, "type": "Microsoft.Resources/resourceGroups",
           "location": (group.location or topo.location).replace(" ", "").lower()}
    if group.tags:
        out["tags"] = dict(group.tags)
    out["properties"] = {"provisioningState": "Succeeded"}
    return out


def check_name(name: str) -> None:
    """https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftresources"""
    bad = "".join(dict.fromkeys(_RG_CHARS.findall(name)))
    if bad:
        raise InvalidResourceGroup(f"The provided resource group name '{name}' has these invalid characters: "
                                   f"'{bad}'. The name can only be a letter, digit, '-', '.', '(', ')' or '_'.")
    if len(name) > 90:
        raise InvalidResourceGroup(f"The provided resource group name '{name}' is too long. "
                                   "Resource group names only allow up to 90 characters.")
    if name.endswith("."):
        raise bad_request(f"The provided resource name '{name}' has these invalid trailing characters: '.'. "
                          "The name can not end with characters: '. '.", "InvalidResourceNameTrailingCharacters")


def _location(value) -> str:
    if not value:
        raise LocationRequired("The location property is required for this definition.")
    loc = normalize_location(value)
    if loc is None:
        raise bad_request(f"The provided location '{value}' is not available for resource group. List of available "
                          f"regions is '{','.join(LOCATIONS)}'.", "LocationNotAvailableForResourceGroup")
    return loc


# Azure enables Network Watcher in a region when a VNet is created there, in this group.
# https://learn.microsoft.com/azure/network-watcher/network-watcher-create
NETWORK_WATCHER_RG = "NetworkWatcherRG"


def watcher_group(topo: Topology) -> ResourceGroup | None:
    """NetworkWatcherRG, when the lab has a VNet and has not created the group itself."""
    if not topo.virtual_networks or topo.group(NETWORK_WATCHER_RG) is not None:
        return None
    return ResourceGroup(name=NETWORK_WATCHER_RG, location=topo.location_of(topo.virtual_networks[0]))


def groups_of(topo: Topology) -> list[ResourceGroup]:
    """The groups a lab answers for: those declared or created, and NetworkWatcherRG."""
    extra = watcher_group(topo)
    return topo.resource_groups + ([extra] if extra else [])


def group_named(topo: Topology, name: str) -> ResourceGroup | None:
    return next((g for g in groups_of(topo) if g.name.lower() == name.lower()), None)


def existing_group(topo: Topology, name: str) -> ResourceGroup:
    """The group a request's path names (NetworkWatcherRG included), or 404 ResourceGroupNotFound."""
    group = group_named(topo, name)
    if group is None:
        raise group_not_found(name)
    return group


def handlers(state: LabState) -> Router:
    def get(call: Call) -> Response:
        topo = state.read()
        body = wire(topo, existing_group(topo, call.params["rg"]))
        return Response(status_code=304) if not_modified(call.headers, body) else resource_response(body)

    def head(call: Call) -> Response:
        return Response(status_code=204 if group_named(state.read(), call.params["rg"]) else 404)

    def put(call: Call, patch: bool = False) -> Response:
        name, body = call.params["rg"], Obj(call.resource_body(), "")
        check_name(name)
        location = None if patch else _location(body.str("location"))
        created: list[bool] = []

        def change(topo: Topology) -> None:
            current = topo.group(name)
            if conditional(call.headers):
                check_preconditions(call.headers, wire(topo, current) if current else None)
            if patch and current is None:
                raise group_not_found(name)
            loc = location or (current.location if current else None)
            if current and not patch and (current.location or topo.location).replace(" ", "").lower() != location:
                raise ArmError(409, "InvalidResourceGroupLocation",
                               f"Invalid resource group location '{body.str('location')}'. The Resource group "
                               f"already exists in location '{current.location or topo.location}'.")
            tags = dict(body.obj("tags").data) if (not patch or "tags" in body) else dict(current.tags)
            new = ResourceGroup(name=current.name if current else name, location=loc, tags=tags)
            replace_or_append(topo.resource_groups, current, new)
            created.append(current is None)

        topo = state.change(change)
        return resource_response(wire(topo, topo.group(name)), 201 if created[0] else 200)

    def delete(call: Call) -> Response:
        """The group and its resources (:func:`vnetlab.lab.delete_group`). NetworkWatcherRG, while
        it is only the watchers' group, has nothing to delete: Network Watcher stays enabled where
        the lab has VNets."""

        def change(topo: Topology) -> None:
            current = group_named(topo, call.params["rg"])
            check_preconditions(call.headers, wire(topo, current) if current else None)
            if current is None:
                raise group_not_found(call.params["rg"])
            if topo.group(current.name) is not None:
                delete_group(topo, current)

        state.change(change)
        return Response(status_code=200)

    def list_(call: Call) -> Response:
        topo = state.read()
        return list_response(wire(topo, g) for g in sorted(groups_of(topo), key=lambda g: g.name.lower()))

    r = Router()
    base = "subscriptions/{sub}/resourcegroups"
    r.add("GET", f"{base}/{{rg}}", get)
    r.add("HEAD", f"{base}/{{rg}}", head)
    r.add("PUT", f"{base}/{{rg}}", put, blocking=True)
    r.add("PATCH", f"{base}/{{rg}}", lambda call: put(call, patch=True), blocking=True)
    r.add("DELETE", f"{base}/{{rg}}", delete, blocking=True)
    r.add("GET", base, list_, blocking=True)
    return r
