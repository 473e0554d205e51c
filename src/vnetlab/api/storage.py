"""Microsoft.Storage/storageAccounts: the account's public endpoints, ``publicNetworkAccess`` and its
firewall (``networkAcls``: default action, bypass, IP rules, virtual network rules), enough of the
account's shape for ``az storage account create/update/show/network-rule``.

The storage RP answers a create with 200 (or 202), never 201 (the SDK refuses 201), and an update
(PATCH) with 200. https://learn.microsoft.com/rest/api/storagerp/storage-accounts
https://learn.microsoft.com/azure/storage/common/storage-network-security
"""

from __future__ import annotations

import re

from starlette.responses import Response

from ..model import Topology
from ..model.paas import StorageAccount, StorageNetworkRuleSet
from .arm import Call, Router, json_response
from .paas_common import endpoint_connections, ip_rules_from_wire, subnet_ids_from_wire
from .resource import TopLevel, envelope, location_of
from .state import LabState, Obj, guid

NS = "Microsoft.Storage"
TYPE = f"{NS}/storageAccounts"
SERVICES = ("blob", "queue", "table", "file", "web", "dfs")
# https://learn.microsoft.com/azure/storage/common/storage-account-overview#storage-account-name
_NAME = re.compile(r"^[a-z0-9]{3,24}$")


def tier_of(sku: str) -> str:
    return "Premium" if sku.lower().startswith("premium") else "Standard"


def primary_endpoints(name: str) -> dict:
    """https://learn.microsoft.com/azure/storage/common/storage-account-overview#standard-endpoints"""
    return {service: f"https://{name}.{service}.core.windows.net/" for service in SERVICES}


def rule_set_wire(topo: Topology, acls: StorageNetworkRuleSet) -> dict:
    return {"bypass": ", ".join(acls.bypass) or "None",
            "virtualNetworkRules": [{"id": topo.subnet_id(s), "action": "Allow", "state": "Succeeded"}
                                    for s in acls.virtual_network_rules],
            "ipRules": [{"value": ip, "action": "Allow"} for ip in acls.ip_rules],
            "defaultAction": acls.default_action, "resourceAccessRules": []}


def account_wire(topo: Topology, acct: StorageAccount) -> dict:
    rid = topo.id_of("storage_accounts", acct)
    loc = topo.location_of(acct)
    props = {"provisioningState": "Succeeded", "primaryEndpoints": primary_endpoints(acct.name),
             "primaryLocation": loc, "statusOfPrimary": "available", "creationTime": "2026-01-01T00:00:00.0000000Z",
             "publicNetworkAccess": acct.public_network_access,
             "networkAcls": rule_set_wire(topo, acct.network_rule_set),
             "privateEndpointConnections": endpoint_connections(topo, "storage_accounts", acct),
             "supportsHttpsTrafficOnly": True, "minimumTlsVersion": "TLS1_2", "allowBlobPublicAccess": False,
             "accessTier": "Hot", "keyCreationTime": {"key1": "2026-01-01T00:00:00.0000000Z",
                                                      "key2": "2026-01-01T00:00:00.0000000Z"},
             "encryption": {"keySource": "Microsoft.Storage", "requireInfrastructureEncryption": False,
                            "services": {"blob": {"enabled": True, "keyType": "Account"},
                                         "file": {"enabled": True, "keyType": "Account"}}}}
    sku = {"name": acct.sku, "tier": tier_of(acct.sku)}
    return envelope(rid, acct.name, TYPE, loc, acct.tags, props, sku=sku, kind=acct.kind)


def rule_set_from_wire(topo: Topology, acls: Obj, current: StorageNetworkRuleSet | None) -> StorageNetworkRuleSet:
    """``networkAcls``: a member left out keeps its current value (a create starts from the defaults)."""
    base = current or StorageNetworkRuleSet()
    bypass = acls.str("bypass")
    subnets = subnet_ids_from_wire(topo, acls, base.virtual_network_rules)
    return StorageNetworkRuleSet(default_action=acls.str("defaultAction", base.default_action),
                                 bypass=re.split(r"[,\s]+", bypass) if bypass is not None else base.bypass,
                                 ip_rules=ip_rules_from_wire(acls, base.ip_rules),
                                 virtual_network_rules=subnets)


def account_from_wire(topo: Topology, body: Obj, current: StorageAccount | None, rg: str,
                      name: str) -> StorageAccount:
    props = body.obj("properties")
    acls = props.obj("networkAcls") if "networkAcls" in props else props.obj("networkRuleSet")
    return StorageAccount(
        name=name, resource_group=rg, tags=dict(body.obj("tags").data),
        location=location_of(body, TYPE, current and topo.location_of(current)),
        kind=body.str("kind", current.kind if current else "StorageV2"),
        sku=body.obj("sku").str("name", current.sku if current else "Standard_LRS"),
        public_network_access=props.str("publicNetworkAccess", current.public_network_access if current else "Enabled"),
        network_rule_set=rule_set_from_wire(topo, acls, current.network_rule_set if current else None))


ACCOUNTS = TopLevel("storage_accounts", NS, "storageAccounts", account_wire, account_from_wire, created=200)


def check_name_availability(state: LabState):
    """POST /subscriptions/{sub}/providers/Microsoft.Storage/checkNameAvailability: az storage account
    create asks first. https://learn.microsoft.com/rest/api/storagerp/storage-accounts/check-name-availability"""

    def handler(call: Call) -> Response:
        body = Obj(call.json(), "")
        name = body.str("name") or ""
        if not _NAME.match(name):
            return json_response({"nameAvailable": False, "reason": "AccountNameInvalid",
                                  "message": f"{name} is not a valid storage account name. Storage account name "
                                             "must be between 3 and 24 characters in length and use numbers and "
                                             "lower-case letters only."})
        if state.read().find("storage_accounts", name) is not None:
            return json_response({"nameAvailable": False, "reason": "AlreadyExists",
                                  "message": f"The storage account named {name} is already taken."})
        return json_response({"nameAvailable": True})

    return handler


def list_keys(state: LabState, call: Call) -> Response:
    """POST .../listKeys: az asks for them on some commands; the lab's keys are made up and stable."""
    topo, acct = ACCOUNTS.lookup(state, call)
    key = guid(topo.id_of("storage_accounts", acct)).replace("-", "")
    return json_response({"keys": [{"keyName": f"key{i}", "value": (key * 3)[:86] + "==", "permissions": "FULL",
                                    "creationTime": "2026-01-01T00:00:00.0000000Z"} for i in (1, 2)]})


def router(state: LabState) -> Router:
    r = Router()
    ACCOUNTS.register(r, state)
    r.add("POST", f"subscriptions/{{sub}}/providers/{NS}/checkNameAvailability", check_name_availability(state))
    r.add("POST", f"subscriptions/{{sub}}/resourcegroups/{{rg}}/providers/{NS}/storageAccounts/{{name}}/listKeys",
          lambda call: list_keys(state, call))
    return r
