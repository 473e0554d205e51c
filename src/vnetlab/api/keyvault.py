"""Microsoft.KeyVault/vaults: the vault's public endpoint (``vaultUri``), ``publicNetworkAccess`` and its
firewall (``networkAcls``: default action, bypass, IP rules, virtual network rules).

The lab keeps no access policies: a vault is answered with Azure RBAC authorization, which is what
``az keyvault create`` asks for by default (so it needs no Microsoft Graph look-up).
https://learn.microsoft.com/rest/api/keyvault/keyvault/vaults
https://learn.microsoft.com/azure/key-vault/general/network-security
"""

from __future__ import annotations

from ..model import Topology
from ..model.paas import KeyVault, KeyVaultNetworkAcls
from .arm import Router
from .discovery import TENANT
from .paas_common import endpoint_connections, ip_rules_from_wire, subnet_ids_from_wire
from .resource import TopLevel, envelope, location_of
from .state import LabState, Obj

NS = "Microsoft.KeyVault"
TYPE = f"{NS}/vaults"


def acls_wire(topo: Topology, acls: KeyVaultNetworkAcls) -> dict:
    return {"bypass": acls.bypass, "defaultAction": acls.default_action,
            "ipRules": [{"value": ip} for ip in acls.ip_rules],
            "virtualNetworkRules": [{"id": topo.subnet_id(s), "ignoreMissingVnetServiceEndpoint": False}
                                    for s in acls.virtual_network_rules]}


def vault_wire(topo: Topology, vault: KeyVault) -> dict:
    rid = topo.id_of("key_vaults", vault)
    props = {"sku": {"family": "A", "name": vault.sku}, "tenantId": TENANT, "accessPolicies": [],
             "enabledForDeployment": False, "enabledForDiskEncryption": False,
             "enabledForTemplateDeployment": False, "enableSoftDelete": True, "softDeleteRetentionInDays": 90,
             "enableRbacAuthorization": True, "vaultUri": f"https://{vault.name.lower()}.vault.azure.net/",
             "provisioningState": "Succeeded", "publicNetworkAccess": vault.public_network_access,
             "networkAcls": acls_wire(topo, vault.network_acls),
             "privateEndpointConnections": endpoint_connections(topo, "key_vaults", vault)}
    return envelope(rid, vault.name, TYPE, topo.location_of(vault), vault.tags, props)


def acls_from_wire(topo: Topology, acls: Obj, current: KeyVaultNetworkAcls | None) -> KeyVaultNetworkAcls:
    base = current or KeyVaultNetworkAcls()
    return KeyVaultNetworkAcls(default_action=acls.str("defaultAction", base.default_action),
                               bypass=acls.str("bypass", base.bypass),
                               ip_rules=ip_rules_from_wire(acls, base.ip_rules),
                               virtual_network_rules=subnet_ids_from_wire(topo, acls, base.virtual_network_rules))


def vault_from_wire(topo: Topology, body: Obj, current: KeyVault | None, rg: str, name: str) -> KeyVault:
    props = body.obj("properties")
    return KeyVault(name=name, resource_group=rg, tags=dict(body.obj("tags").data),
                    location=location_of(body, TYPE, current and topo.location_of(current)),
                    sku=props.obj("sku").str("name", current.sku if current else "standard"),
                    public_network_access=props.str("publicNetworkAccess",
                                                    current.public_network_access if current else "Enabled"),
                    network_acls=acls_from_wire(topo, props.obj("networkAcls"),
                                                current.network_acls if current else None))


VAULTS = TopLevel("key_vaults", NS, "vaults", vault_wire, vault_from_wire)


def router(state: LabState) -> Router:
    r = Router()
    VAULTS.register(r, state)
    return r
