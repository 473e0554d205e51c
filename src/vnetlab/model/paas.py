"""PaaS services with a public endpoint and a firewall (storage accounts, SQL servers, key vaults)
and the private endpoints that reach them (or a web app) from a subnet.

https://learn.microsoft.com/azure/templates/microsoft.storage/storageaccounts
https://learn.microsoft.com/azure/templates/microsoft.sql/servers
https://learn.microsoft.com/azure/templates/microsoft.keyvault/vaults
https://learn.microsoft.com/azure/templates/microsoft.network/privateendpoints
"""

from __future__ import annotations

import ipaddress
import re
from typing import ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .base import Model, Resource, canonical_choice
from .dns import name_of_ref
from .ids import parse_id

PublicNetworkAccess = Literal["Enabled", "Disabled", "SecuredByPerimeter"]
ConnectionState = Literal["Approved", "Pending", "Rejected", "Disconnected"]
DefaultAction = Literal["Allow", "Deny"]

# groupIds (sub-resources) per target kind. https://learn.microsoft.com/azure/private-link/private-endpoint-overview#private-link-resource
_STORAGE_SERVICES = ("blob", "file", "queue", "table", "web", "dfs")
GROUP_IDS = {
    "storage_accounts": (*_STORAGE_SERVICES, *(f"{s}_secondary" for s in _STORAGE_SERVICES)),
    "sql_servers": ("sqlServer",),
    "key_vaults": ("vault",),
    "web_apps": ("sites",),  # and sites-<slot>
}
# kinds a private endpoint can target, with the ARM type Azure names in its errors
TARGET_TYPES = {"storage_accounts": "Microsoft.Storage/storageAccounts", "sql_servers": "Microsoft.Sql/servers",
                "key_vaults": "Microsoft.KeyVault/vaults", "web_apps": "Microsoft.Web/sites"}


def subnet_ref(value) -> str:
    """A subnet as ``VNET/SUBNET``, from that form, an ARM subnet id, or ``{id: ...}``/``{subnet: ...}``."""
    if isinstance(value, dict):
        value = value.get("id") or value.get("subnet") or value.get("virtual_network_subnet_id") or ""
    text = str(value).strip()
    parsed = parse_id(text) if text.startswith("/") else None
    if parsed is not None and len(parsed.names) == 2 and parsed.types[0].lower() == "virtualnetworks":
        return f"{parsed.names[0]}/{parsed.names[1]}"
    return text


def _ip_rule(value) -> str:
    """An IP rule: an address or a CIDR range (``{value: ...}`` as ARM writes it)."""
    if isinstance(value, dict):
        value = value.get("value") or value.get("ip_address_or_range") or ""
    text = str(value).strip()
    try:
        return str(ipaddress.ip_network(text, strict=False)) if "/" in text else str(ipaddress.IPv4Address(text))
    except ValueError:
        raise PydanticCustomError("InvalidIpRule", f"IP rule '{text}' is not an IPv4 address or range.") from None


class _NetworkAcls(Model):
    """What storage's and Key Vault's ``networkAcls`` share: the default action, IP rules, VNet rules."""

    default_action: DefaultAction = "Allow"
    ip_rules: list[str] = Field(default_factory=list)
    virtual_network_rules: list[str] = Field(default_factory=list, description="subnets: VNET/SUBNET or ARM ids")

    @field_validator("default_action", mode="before")
    @classmethod
    def _v_action(cls, v):
        return canonical_choice(v, ("Allow", "Deny"))

    @field_validator("ip_rules", mode="before")
    @classmethod
    def _v_ips(cls, v):
        return [_ip_rule(r) for r in v or []]

    @field_validator("virtual_network_rules", mode="before")
    @classmethod
    def _v_subnets(cls, v):
        return [subnet_ref(r) for r in v or []]


class StorageNetworkRuleSet(_NetworkAcls):
    """``networkAcls`` of a storage account. Rules act only when ``default_action`` is Deny.
    https://learn.microsoft.com/azure/storage/common/storage-network-security"""

    bypass: list[Literal["AzureServices", "Logging", "Metrics", "None"]] = Field(
        default_factory=lambda: ["AzureServices"])

    @field_validator("bypass", mode="before")
    @classmethod
    def _v_bypass(cls, v):
        items = re.split(r"[,\s]+", v) if isinstance(v, str) else list(v or [])
        return [canonical_choice(b, ("AzureServices", "Logging", "Metrics", "None")) for b in items if str(b).strip()]


class _PaasService(Resource):
    """What the three services share: a name rule of their own (``NAME_RULE``: the pattern, Azure's
    code, its message) and the switch of their public endpoint."""

    NAME_RULE: ClassVar[tuple[str, str, str]]
    public_network_access: PublicNetworkAccess = "Enabled"

    @field_validator("name")
    @classmethod
    def _v_name(cls, v):
        pattern, code, message = cls.NAME_RULE
        if not re.fullmatch(pattern, v):
            raise PydanticCustomError(code, message.format(name=v))
        return v

    @field_validator("public_network_access", mode="before")
    @classmethod
    def _v_access(cls, v):
        return canonical_choice(v, ("Enabled", "Disabled", "SecuredByPerimeter"))


class StorageAccount(_PaasService):
    """A storage account: its public endpoint (``<name>.blob.core.windows.net`` and the other
    services) and its firewall.
    https://learn.microsoft.com/azure/storage/common/storage-account-overview#storage-account-name"""

    NAME_RULE = (r"[a-z0-9]{3,24}", "AccountNameInvalid", "{name} is not a valid storage account name. Storage "
                 "account name must be between 3 and 24 characters in length and use numbers and lower-case "
                 "letters only.")
    kind: str = "StorageV2"
    sku: str = "Standard_LRS"
    network_rule_set: StorageNetworkRuleSet = Field(default_factory=StorageNetworkRuleSet)


class SqlFirewallRule(Model):
    """A server-level IP firewall rule; 0.0.0.0-0.0.0.0 (AllowAllWindowsAzureIps) admits Azure services.
    https://learn.microsoft.com/azure/azure-sql/database/firewall-configure"""

    name: str = Field(min_length=1, max_length=128)
    start_ip_address: str
    end_ip_address: str

    @field_validator("start_ip_address", "end_ip_address", mode="before")
    @classmethod
    def _v_ip(cls, v, info: ValidationInfo):
        try:
            return str(ipaddress.IPv4Address(str(v).strip()))
        except ValueError:
            raise PydanticCustomError("InvalidParameterValue", f"Invalid value given for parameter "
                                      f"{info.field_name}. Specify a valid parameter value.") from None


class SqlVirtualNetworkRule(Model):
    """A server's VNet rule: a subnet (with the Microsoft.Sql service endpoint, unless
    ``ignore_missing_vnet_service_endpoint``, which creates a rule that does nothing until it has one).
    https://learn.microsoft.com/azure/azure-sql/database/vnet-service-endpoint-rule-overview"""

    name: str = Field(min_length=1, max_length=128)
    subnet: str = Field(description="VNET/SUBNET or an ARM subnet id")
    ignore_missing_vnet_service_endpoint: bool = False

    @model_validator(mode="before")
    @classmethod
    def _arm_key(cls, data):
        if isinstance(data, dict) and "virtual_network_subnet_id" in data:
            data = dict(data)
            data.setdefault("subnet", data.pop("virtual_network_subnet_id"))
        return data

    @field_validator("subnet", mode="before")
    @classmethod
    def _v_subnet(cls, v):
        return subnet_ref(v)


class SqlServer(_PaasService):
    """A logical SQL server: ``<name>.database.windows.net``; its IP firewall denies by default.
    https://learn.microsoft.com/azure/azure-resource-manager/management/resource-name-rules#microsoftsql"""

    NAME_RULE = (r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?", "InvalidServerName", "Invalid value given for parameter "
                 "ServerName '{name}': a server name has 1 to 63 characters, lower-case letters, digits and "
                 "hyphens, and cannot start or end with a hyphen.")
    firewall_rules: list[SqlFirewallRule] = Field(default_factory=list)
    virtual_network_rules: list[SqlVirtualNetworkRule] = Field(default_factory=list)


class KeyVaultNetworkAcls(_NetworkAcls):
    """``networkAcls`` of a key vault. https://learn.microsoft.com/azure/key-vault/general/network-security"""

    bypass: Literal["AzureServices", "None"] = "AzureServices"

    @field_validator("bypass", mode="before")
    @classmethod
    def _v_bypass(cls, v):
        return canonical_choice(v, ("AzureServices", "None"))


class KeyVault(_PaasService):
    """A key vault: ``<name>.vault.azure.net``.
    https://learn.microsoft.com/azure/key-vault/general/about-keys-secrets-certificates#objects-identifiers-and-versioning"""

    NAME_RULE = (r"(?!.*--)[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]", "VaultNameNotValid", "The vault name '{name}' is "
                 "invalid. A vault's name must be between 3-24 alphanumeric characters. The name must begin with a "
                 "letter, end with a letter or digit, and not contain consecutive hyphens.")
    sku: str = "standard"
    network_acls: KeyVaultNetworkAcls = Field(default_factory=KeyVaultNetworkAcls)


class PrivateEndpoint(Resource):
    """A private endpoint: a read-only NIC in ``subnet`` (named ``<pe>.nic.<guid>``, or
    ``custom_network_interface_name``) whose address, static here or dynamic, reaches one
    sub-resource (``group_id``) of ``target``. Only an Approved connection passes traffic.
    ``private_dns_zone_group``: the zones where Azure writes ``<target>`` -> the PE's address (and
    removes it with the PE).
    https://learn.microsoft.com/azure/private-link/private-endpoint-overview
    https://learn.microsoft.com/azure/private-link/private-endpoint-dns-integration"""

    subnet: str = Field(description="VNET/SUBNET or an ARM subnet id")
    private_ip_address: str | None = None
    target: str = Field(description="name or ARM id of a storage account, SQL server, key vault or web app")
    group_id: str = ""
    connection_state: ConnectionState = "Approved"
    private_dns_zone_group: list[str] = Field(default_factory=list, description="private DNS zone names")
    custom_network_interface_name: str | None = None

    @field_validator("subnet", mode="before")
    @classmethod
    def _v_subnet(cls, v):
        return subnet_ref(v)

    @field_validator("private_ip_address", mode="before")
    @classmethod
    def _v_ip(cls, v):
        if v is None or v == "":
            return None
        try:
            return str(ipaddress.IPv4Address(str(v).strip()))
        except ValueError:
            raise PydanticCustomError("InvalidPrivateIPAddress", f"'{v}' is not a valid IPv4 address.") from None

    @field_validator("connection_state", mode="before")
    @classmethod
    def _v_state(cls, v):
        return canonical_choice(v, ("Approved", "Pending", "Rejected", "Disconnected"))

    @field_validator("private_dns_zone_group", mode="before")
    @classmethod
    def _v_zones(cls, v):
        items = [v] if isinstance(v, str) else list(v or [])
        return [name_of_ref(z).rstrip(".").lower() for z in items]

    @property
    def target_name(self) -> str:
        return name_of_ref(self.target)

    @property
    def approved(self) -> bool:
        return self.connection_state == "Approved"
