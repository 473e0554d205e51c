"""Virtual networks, subnets, delegations, peerings and network interfaces.

https://learn.microsoft.com/azure/templates/microsoft.network/virtualnetworks
https://learn.microsoft.com/azure/templates/microsoft.network/networkinterfaces
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .base import Model, Resource
from .dns import dns_server_addresses

WEB_SERVER_FARMS = "Microsoft.Web/serverFarms"


def _cidr(value, resource: str, ipv6: bool = False) -> str:
    """A CIDR prefix, refused with Azure's codes and texts (not pydantic's): a malformed one
    (InvalidAddressPrefixFormat) or one with host bits set (InvalidCIDRNotation)."""
    text = str(value).strip()
    try:
        loose = ipaddress.ip_network(text, strict=False)
        if loose.version == 6 and not ipv6 or "/" not in text:
            raise ValueError(text)
    except ValueError:
        raise PydanticCustomError("InvalidAddressPrefixFormat", f"Address prefix {text} of resource {resource} is "
                                  "not formatted correctly. It should follow CIDR notation, for example "
                                  "10.0.0.0/24.") from None
    if loose.network_address != ipaddress.ip_address(text.split("/")[0]):
        raise PydanticCustomError("InvalidCIDRNotation", f"The address prefix {text} in resource {resource} has an "
                                  "invalid CIDR notation. For the given prefix length, the address prefix should be "
                                  f"{loose}.")
    return str(loose)


def _owner(info: ValidationInfo) -> str:
    return str(info.data.get("name") or "?")


class Delegation(Model):
    name: str = ""
    service_name: str

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data):
        if isinstance(data, str):
            return {"name": data.replace("/", "."), "service_name": data}
        return data

    @model_validator(mode="after")
    def _default_name(self):
        if not self.name:
            self.name = self.service_name.replace("/", ".")
        return self


class Subnet(Model):
    """A subnet: one address range (``address_prefix``) or several (ARM ``addressPrefixes``: all
    of them in ``address_prefixes``, the first also in ``address_prefix``).
    https://learn.microsoft.com/azure/templates/microsoft.network/virtualnetworks/subnets"""

    name: str = Field(min_length=1, max_length=80)
    address_prefix: str
    address_prefixes: list[str] = Field(default_factory=list)
    network_security_group: str | None = None
    route_table: str | None = None
    delegations: list[Delegation] = Field(default_factory=list)
    service_endpoints: list[str] = Field(default_factory=list)
    private_endpoint_network_policies: str = "Disabled"
    # natGateway: the NAT gateway that replaces the subnet's default route to the internet for new flows
    # https://learn.microsoft.com/azure/nat-gateway/nat-overview
    nat_gateway: str | None = None
    # defaultOutboundAccess: false makes a private subnet (no implicit public source for its VMs)
    # https://learn.microsoft.com/azure/virtual-network/ip-services/default-outbound-access
    default_outbound_access: bool | None = None
    # read-only in ARM: the plans whose AppServiceLink stayed when their app was deleted without
    # disconnecting first (set on every change by engine.addressing.settle_app_service_links)
    service_association_links: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _first_prefix(cls, data):
        """``address_prefixes`` alone gives ``address_prefix`` its first range; a single range is
        kept in ``address_prefix`` only."""
        if isinstance(data, dict) and data.get("address_prefixes"):
            data = dict(data)
            prefixes = data["address_prefixes"]
            prefixes = [prefixes] if isinstance(prefixes, str) else list(prefixes)
            data.setdefault("address_prefix", prefixes[0])
            data["address_prefixes"] = prefixes if len(prefixes) > 1 else []
        return data

    @field_validator("address_prefix", mode="before")
    @classmethod
    def _v_prefix(cls, v, info: ValidationInfo):
        return _cidr(v, _owner(info))

    @field_validator("address_prefixes", mode="before")
    @classmethod
    def _v_prefixes(cls, v, info: ValidationInfo):
        return [_cidr(p, _owner(info)) for p in ([v] if isinstance(v, str) else v or [])]

    @model_validator(mode="after")
    def _first_is_address_prefix(self):
        if self.address_prefixes and self.address_prefix not in self.address_prefixes:
            self.address_prefixes.insert(0, self.address_prefix)
        return self

    @property
    def prefixes(self) -> list[str]:
        return self.address_prefixes or [self.address_prefix]

    @property
    def network(self) -> ipaddress.IPv4Network:
        """The first range (where App Service integration takes its addresses)."""
        return ipaddress.IPv4Network(self.address_prefix)

    @property
    def networks(self) -> list[ipaddress.IPv4Network]:
        return list(_networks(tuple(self.prefixes)))

    def network_of(self, ip) -> ipaddress.IPv4Network | None:
        """The subnet's range that holds ``ip``."""
        return next((n for n in self.networks if ipaddress.IPv4Address(ip) in n), None)

    def delegated_to(self, service: str) -> bool:
        return any(d.service_name.lower() == service.lower() for d in self.delegations)


PeeringState = Literal["Initiated", "Connected", "Disconnected"]


class VirtualNetworkPeering(Model):
    """One direction of a peering. Traffic flows only when the remote VNet has the
    reverse peering too (peeringState Connected); otherwise it is Initiated. Once connected,
    deleting the reverse peering or the remote VNet leaves this one Disconnected (kept, no
    traffic) until it is deleted and created again, or changed.
    https://learn.microsoft.com/azure/virtual-network/virtual-network-peering-overview"""

    name: str = Field(min_length=1, max_length=80)
    remote_virtual_network: str
    allow_virtual_network_access: bool = True
    allow_forwarded_traffic: bool = False
    allow_gateway_transit: bool = False
    use_remote_gateways: bool = False
    # read-only in ARM: set by every change (engine.routing.settle_peerings), never taken from input
    peering_state: PeeringState | None = None

    def settings(self) -> tuple:
        """What the user writes: a peering whose settings change counts as updated."""
        return (self.remote_virtual_network.lower(), self.allow_virtual_network_access, self.allow_forwarded_traffic,
                self.allow_gateway_transit, self.use_remote_gateways)


class VirtualNetwork(Resource):
    address_space: list[str] = Field(min_length=1)
    dns_servers: list[str] = Field(default_factory=list)
    subnets: list[Subnet] = Field(default_factory=list)
    peerings: list[VirtualNetworkPeering] = Field(default_factory=list)

    @field_validator("address_space", mode="before")
    @classmethod
    def _v_space(cls, v):
        return [v] if isinstance(v, str) else v

    @field_validator("address_space")
    @classmethod
    def _v_space_cidr(cls, v, info: ValidationInfo):
        return [_cidr(p, _owner(info), ipv6=True) for p in v]

    @field_validator("dns_servers")
    @classmethod
    def _v_dns(cls, v, info: ValidationInfo):
        """Each custom DNS server is an IP address.
        https://learn.microsoft.com/azure/virtual-network/manage-virtual-network#change-dns-servers"""
        return dns_server_addresses(v, f"virtual network {_owner(info)}")

    @property
    def ipv4_space(self) -> list[str]:
        """The IPv4 ranges: the lab's data plane is IPv4 (an IPv6 range is kept, and refused for integration)."""
        return [p for p in self.address_space if ":" not in p]

    @property
    def networks(self) -> list[ipaddress.IPv4Network]:
        return [ipaddress.IPv4Network(p) for p in self.ipv4_space]

    def subnet(self, name: str) -> Subnet | None:
        low = name.lower()
        return next((s for s in self.subnets if s.name.lower() == low), None)


@lru_cache(maxsize=1 << 14)  # the emulation asks each subnet's ranges for every NIC in it
def _networks(prefixes: tuple[str, ...]) -> tuple[ipaddress.IPv4Network, ...]:
    return tuple(ipaddress.IPv4Network(p) for p in prefixes)


def _ipv4(v):
    if v is None:
        return v
    try:
        return str(ipaddress.IPv4Address(str(v).strip()))
    except ValueError:
        raise ValueError(f"{v!r} is not a valid IPv4 address") from None


def _static_when_addressed(data):
    """An address given without a method is Static (as ARM and az do)."""
    if isinstance(data, dict) and data.get("private_ip_address") and "private_ip_allocation_method" not in data:
        data = {**data, "private_ip_allocation_method": "Static"}
    return data


PRIMARY_IP_CONFIGURATION = "ipconfig1"  # the name az and the portal give the first configuration


class IPConfiguration(Model):
    """One IP configuration of a network interface (ARM ``ipConfigurations[]``): a name and a
    private address of the NIC's subnet. ``primary`` is set on the NIC's first one only (see
    :class:`NetworkInterface`).
    https://learn.microsoft.com/azure/virtual-network/ip-services/virtual-network-multiple-ip-addresses-portal"""

    name: str = Field(min_length=1, max_length=80)
    private_ip_address: str | None = None
    private_ip_allocation_method: Literal["Dynamic", "Static"] = "Dynamic"
    primary: bool = False

    @field_validator("private_ip_address")
    @classmethod
    def _v_ip(cls, v):
        return _ipv4(v)

    @model_validator(mode="before")
    @classmethod
    def _static_when_given(cls, data):
        return _static_when_addressed(data)


class NetworkInterface(Resource):
    """A NIC in one subnet with one or several IP configurations, as ARM holds it. The primary
    configuration's address and method are ``private_ip_address`` and
    ``private_ip_allocation_method`` (its name ``primary_ip_configuration``); the others are in
    ``secondary_ip_configurations``. The topology file may also write them as ARM does,
    ``ip_configurations: [{name, private_ip_address, primary}, ...]`` (one primary), or give
    secondary addresses alone: ``secondary_ip_addresses: [10.0.0.5]`` (named ipconfig2, ...).
    ``ip_configurations`` (the property) gives all of them, the primary first.
    https://learn.microsoft.com/azure/virtual-network/ip-services/virtual-network-network-interface-addresses"""

    subnet: str = Field(description="VNET/SUBNET")
    private_ip_address: str | None = None
    private_ip_allocation_method: Literal["Dynamic", "Static"] = "Dynamic"
    primary_ip_configuration: str = Field(PRIMARY_IP_CONFIGURATION, min_length=1, max_length=80,
                                          description="the name of the primary IP configuration")
    secondary_ip_configurations: list[IPConfiguration] = Field(default_factory=list)
    network_security_group: str | None = None
    enable_ip_forwarding: bool = False
    # the primary IP configuration's publicIPAddress (an instance-level public IP)
    # https://learn.microsoft.com/azure/virtual-network/ip-services/virtual-network-network-interface-addresses#add-ip-addresses
    public_ip_address: str | None = None
    # dnsSettings.dnsServers: they take precedence over the VNet's.
    # https://learn.microsoft.com/azure/virtual-network/virtual-network-network-interface#change-dns-servers
    dns_servers: list[str] = Field(default_factory=list)
    # read-only in ARM (privateEndpoint): the private endpoint that owns this NIC; the lab creates
    # and removes such a NIC with its endpoint (Topology._private_endpoint_nics)
    private_endpoint: str | None = None

    @field_validator("dns_servers", mode="before")
    @classmethod
    def _v_dns(cls, v, info: ValidationInfo):
        return dns_server_addresses(v, f"network interface {_owner(info)}")

    @field_validator("private_ip_address")
    @classmethod
    def _v_ip(cls, v):
        return _ipv4(v)

    @model_validator(mode="before")
    @classmethod
    def _input_forms(cls, data):
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "ip_configurations" in data:
            data = _from_ip_configurations(data)
        if "secondary_ip_addresses" in data:
            data = _from_secondary_addresses(data)
        return _static_when_addressed(data)

    @model_validator(mode="after")
    def _one_primary(self):
        if any(c.primary for c in self.secondary_ip_configurations):
            raise PydanticCustomError("NetworkInterfaceMustHaveOneOneIPConfigAsPrimary",
                                      f"Network Interface {self.name} specifies more than one IPConfiguration as "
                                      "Primary: exactly one must be.")
        return self

    @property
    def ip_configurations(self) -> list[IPConfiguration]:
        """Every IP configuration, the primary first (built on each call: change the NIC's fields,
        not these)."""
        primary = IPConfiguration(name=self.primary_ip_configuration, private_ip_address=self.private_ip_address,
                                  private_ip_allocation_method=self.private_ip_allocation_method, primary=True)
        return [primary, *self.secondary_ip_configurations]

    @property
    def addresses(self) -> list[str]:
        """The NIC's private addresses given so far, the primary first (as ``ip_configurations`` gives
        them, without building the primary's model: the emulation asks this of every NIC, often)."""
        primary = _ipv4(self.private_ip_address)
        return ([primary] if primary else []) + [c.private_ip_address for c in self.secondary_ip_configurations
                                                 if c.private_ip_address]

    def ip_configuration_at(self, ip) -> str | None:
        """The name of the configuration holding ``ip``."""
        ip = str(ip)
        return next((c.name for c in self.ip_configurations if c.private_ip_address == ip), None)


def _from_ip_configurations(data: dict) -> dict:
    """ARM's form: a list of configurations, exactly one primary when there are several
    (Azure: NetworkInterfaceMustHaveOneOneIPConfigAsPrimary, see Azure/azure-sdk-for-go#259)."""
    configs = data.pop("ip_configurations") or []
    configs = [dict(c) if isinstance(c, dict) else c for c in configs]
    name = data.get("name") or "?"
    if not configs:
        raise PydanticCustomError("NetworkInterfaceMustHaveIpConfiguration",
                                  f"Network interface {name} must have at least one IP configuration.")
    for key in ("private_ip_address", "private_ip_allocation_method", "primary_ip_configuration",
                "secondary_ip_configurations"):
        if key in data:
            raise PydanticCustomError("InvalidRequestContent", f"Network interface {name} gives ip_configurations "
                                      f"and {key}: write the primary configuration in ip_configurations only.")
    primaries = [c for c in configs if isinstance(c, dict) and c.get("primary")]
    if len(configs) == 1 and not primaries:
        primaries = configs
    if len(primaries) != 1:
        which = "none of the IPConfigurations is" if not primaries else f"{len(primaries)} IPConfigurations are"
        raise PydanticCustomError("NetworkInterfaceMustHaveOneOneIPConfigAsPrimary",
                                  f"Network Interface {name} specifies multiple IPConfigurations but {which} "
                                  "specified as Primary: exactly one must be.")
    primary = primaries[0]
    data["primary_ip_configuration"] = primary.get("name") or PRIMARY_IP_CONFIGURATION
    for key in ("private_ip_address", "private_ip_allocation_method"):
        if primary.get(key) is not None:
            data[key] = primary[key]
    data["secondary_ip_configurations"] = [c for c in configs if c is not primary]
    return data


def _from_secondary_addresses(data: dict) -> dict:
    """The shorthand: secondary addresses alone, Static, named ipconfig2, ipconfig3, ... (the names
    az and the portal suggest), after any configuration already given."""
    addresses = data.pop("secondary_ip_addresses") or []
    addresses = [addresses] if isinstance(addresses, str) else list(addresses)
    configs = list(data.get("secondary_ip_configurations") or [])
    taken = {str(data.get("primary_ip_configuration") or PRIMARY_IP_CONFIGURATION).lower()}
    taken |= {str(c.get("name", "")).lower() for c in configs if isinstance(c, dict)}
    n = 2
    for address in addresses:
        while f"ipconfig{n}" in taken:
            n += 1
        taken.add(f"ipconfig{n}")
        configs.append({"name": f"ipconfig{n}", "private_ip_address": address, "private_ip_allocation_method": "Static"})
    data["secondary_ip_configurations"] = configs
    return data
