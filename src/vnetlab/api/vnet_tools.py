"""What ``az network vnet check-ip-address``, ``list-available-ips`` and ``az network vnet subnet
list-available-delegations`` ask for.

- ``GET virtualNetworks/{vnet}/CheckIPAddressAvailability?ipAddress=``: answered by the engine
  (:func:`vnetlab.engine.addressing.address_availability`); ``list-available-ips`` asks it about
  the VNet's first address and prints the suggestions
  https://learn.microsoft.com/rest/api/virtualnetwork/virtual-networks/check-ip-address-availability
- ``GET .../locations/{loc}/availableDelegations`` (per subscription or resource group)
  https://learn.microsoft.com/rest/api/virtualnetwork/available-delegations/list
"""

from __future__ import annotations

from ipaddress import IPv4Address

from starlette.responses import Response

from ..engine.addressing import address_availability
from .arm import ArmError, Call, Router, json_response
from .discovery import normalize_location
from .network import VNETS
from .state import LabState, require_group

# serviceName -> the actions a delegation grants, as Azure lists them.
# https://learn.microsoft.com/azure/virtual-network/subnet-delegation-overview
DELEGATIONS = {
    "Microsoft.Web/serverFarms": ["Microsoft.Network/virtualNetworks/subnets/action"],
    "Microsoft.Web/hostingEnvironments": ["Microsoft.Network/virtualNetworks/subnets/action"],
    "Microsoft.ContainerInstance/containerGroups": ["Microsoft.Network/virtualNetworks/subnets/action"],
    "Microsoft.App/environments": ["Microsoft.Network/virtualNetworks/subnets/join/action"],
    "Microsoft.Sql/managedInstances": ["Microsoft.Network/virtualNetworks/subnets/join/action",
                                       "Microsoft.Network/virtualNetworks/subnets/prepareNetworkPolicies/action",
                                       "Microsoft.Network/virtualNetworks/subnets/unprepareNetworkPolicies/action"],
    "Microsoft.DBforPostgreSQL/flexibleServers": ["Microsoft.Network/virtualNetworks/subnets/join/action"],
    "Microsoft.DBforMySQL/flexibleServers": ["Microsoft.Network/virtualNetworks/subnets/join/action"],
    "Microsoft.Netapp/volumes": ["Microsoft.Network/networkinterfaces/*",
                                 "Microsoft.Network/virtualNetworks/subnets/join/action"],
    "Microsoft.Databricks/workspaces": ["Microsoft.Network/virtualNetworks/subnets/join/action",
                                        "Microsoft.Network/virtualNetworks/subnets/prepareNetworkPolicies/action",
                                        "Microsoft.Network/virtualNetworks/subnets/unprepareNetworkPolicies/action"],
    "Microsoft.ApiManagement/service": ["Microsoft.Network/virtualNetworks/subnets/join/action"],
}


def check_ip(state: LabState, call: Call) -> Response:
    topo, vnet = VNETS.lookup(state, call)
    text = call.request.query_params.get("ipAddress", "")
    try:
        ip = IPv4Address(text.strip())
    except ValueError:
        raise ArmError(400, "InvalidRequestFormat", f"The IP address '{text}' is not a valid IPv4 address.") from None
    available, others = address_availability(topo, vnet.name, ip)
    body: dict = {"available": available}
    if not available:
        body["availableIPAddresses"] = [str(a) for a in others]
    return json_response(body)


def available_delegations(state: LabState, call: Call) -> Response:
    if "rg" in call.params:
        require_group(state.read(), call.params["rg"])
    loc = normalize_location(call.params["loc"])
    if loc is None:
        raise ArmError(400, "LocationNotAvailableForResourceType",
                       f"The provided location '{call.params['loc']}' is not available.")
    scope = f"/subscriptions/{call.subscription}" + (f"/resourceGroups/{call.params['rg']}" if "rg" in call.params
                                                      else "")
    return json_response({"value": [
        {"name": service.replace("/", "."), "type": "Microsoft.Network/availableDelegations",
         "id": f"{scope}/providers/Microsoft.Network/availableDelegations/{service.replace('/', '.')}",
         "serviceName": service, "actions": actions}
        for service, actions in DELEGATIONS.items()]})


def router(state: LabState) -> Router:
    r = Router()
    vnet = "subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Network/virtualNetworks/{name}"
    r.add("GET", f"{vnet}/CheckIPAddressAvailability", lambda call: check_ip(state, call))
    r.add("GET", "subscriptions/{sub}/providers/Microsoft.Network/locations/{loc}/availableDelegations",
          lambda call: available_delegations(state, call))
    r.add("GET", "subscriptions/{sub}/resourcegroups/{rg}/providers/Microsoft.Network/locations/{loc}/"
                 "availableDelegations", lambda call: available_delegations(state, call))
    return r
