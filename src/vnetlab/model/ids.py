"""ARM resource ids.

Every resource has an id of the form
``/subscriptions/{sub}/resourceGroups/{rg}/providers/{namespace}/{type}/{name}[/{child}/{name}]``.
https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"

# model kind -> (provider namespace, ARM type segment)
TYPES = {
    "virtual_networks": ("Microsoft.Network", "virtualNetworks"),
    "network_security_groups": ("Microsoft.Network", "networkSecurityGroups"),
    "route_tables": ("Microsoft.Network", "routeTables"),
    "network_interfaces": ("Microsoft.Network", "networkInterfaces"),
    "virtual_machines": ("Microsoft.Compute", "virtualMachines"),
    "app_service_plans": ("Microsoft.Web", "serverfarms"),
    "web_apps": ("Microsoft.Web", "sites"),
    "private_dns_zones": ("Microsoft.Network", "privateDnsZones"),
    "private_endpoints": ("Microsoft.Network", "privateEndpoints"),
    "storage_accounts": ("Microsoft.Storage", "storageAccounts"),
    "sql_servers": ("Microsoft.Sql", "servers"),
    "key_vaults": ("Microsoft.KeyVault", "vaults"),
    "public_ip_addresses": ("Microsoft.Network", "publicIPAddresses"),
    "public_ip_prefixes": ("Microsoft.Network", "publicIPPrefixes"),
    "nat_gateways": ("Microsoft.Network", "natGateways"),
    "virtual_network_gateways": ("Microsoft.Network", "virtualNetworkGateways"),
    "local_network_gateways": ("Microsoft.Network", "localNetworkGateways"),
    "connections": ("Microsoft.Network", "connections"),
}


def rg_id(sub: str, rg: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


def resource_id(sub: str, rg: str, kind: str, name: str, *children: str) -> str:
    namespace, type_ = TYPES[kind]
    rid = f"{rg_id(sub, rg)}/providers/{namespace}/{type_}/{name}"
    for i in range(0, len(children), 2):
        rid += f"/{children[i]}/{children[i + 1]}"
    return rid


@dataclass(frozen=True)
class ParsedId:
    subscription: str
    resource_group: str
    namespace: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.names[-1]


def parse_id(rid: str) -> ParsedId | None:
    """Parse an ARM id; None when it is not one. Segment names are matched case-insensitively."""
    parts = [p for p in rid.strip().split("/") if p]
    if len(parts) < 4 or parts[0].lower() != "subscriptions" or parts[2].lower() != "resourcegroups":
        return None
    sub, rg, rest = parts[1], parts[3], parts[4:]
    if not rest:
        return ParsedId(sub, rg, "", (), ())
    if rest[0].lower() != "providers" or len(rest) < 4 or len(rest) % 2 != 0:
        return None
    namespace, pairs = rest[1], rest[2:]
    return ParsedId(sub, rg, namespace, tuple(pairs[0::2]), tuple(pairs[1::2]))
