"""Private DNS zones (records, virtual network links) and the lab's custom DNS servers.

https://learn.microsoft.com/azure/dns/private-dns-privatednszone
https://learn.microsoft.com/azure/dns/private-dns-virtual-network-links
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .base import Model, Resource

# The lab holds A and CNAME record sets; Azure also has AAAA, MX, PTR, SOA, SRV, TXT.
RECORD_TYPES = ("A", "CNAME")
AZURE_DNS = "168.63.129.16"  # https://learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16
RESOLUTION_POLICIES = ("Default", "NxDomainRedirect")


def dns_server_addresses(value, owner: str) -> list[str]:
    """DNS server addresses: each an IP address, refused with Azure's code otherwise.
    https://learn.microsoft.com/azure/virtual-network/manage-virtual-network#change-dns-servers"""
    out = []
    for server in [value] if isinstance(value, str) else (value or []):
        try:
            out.append(str(ipaddress.ip_address(str(server).strip())))
        except ValueError:
            raise PydanticCustomError("InvalidDnsServerAddress", f"DNS server address '{server}' of {owner} is not "
                                      "a valid IP address.") from None
    return out


def name_of_ref(value) -> str:
    """A resource named by name or by ARM id: its name (the lab's names are unique per kind)."""
    text = str(value).strip()
    return text.rstrip("/").rsplit("/", 1)[-1] if text.lower().startswith("/subscriptions/") else text


class RecordSet(Model):
    """A record set: ``name`` relative to the zone (``@`` for the apex), ``type`` A or CNAME, its
    values (A: IPv4 addresses; CNAME: one name). ``value:`` (one) is accepted for ``values``.
    Names are lower-cased, as Azure returns them. ``is_auto_registered`` is read-only: true on the
    A records a registration link writes for VMs (the engine derives those).
    https://learn.microsoft.com/azure/dns/private-dns-privatednszone#record-sets"""

    name: str = Field(min_length=1, max_length=253)
    type: str = "A"
    values: list[str] = Field(default_factory=list)
    ttl: int = Field(default=3600, ge=0, le=2147483647)
    is_auto_registered: bool = False

    @model_validator(mode="before")
    @classmethod
    def _one_value(cls, data):
        if isinstance(data, dict) and "value" in data:
            data = dict(data)
            one = data.pop("value")
            data.setdefault("values", [one] if not isinstance(one, list) else one)
        return data

    @field_validator("name", mode="before")
    @classmethod
    def _v_name(cls, v):
        return str(v).strip().rstrip(".").lower() or "@"

    @field_validator("type", mode="before")
    @classmethod
    def _v_type(cls, v, info: ValidationInfo):
        up = str(v).strip().upper()
        if up not in RECORD_TYPES:
            raise PydanticCustomError("UnsupportedRecordType", f"Record set '{info.data.get('name', '?')}' has type "
                                      f"{v}: the lab holds A and CNAME record sets only.")
        return up

    @model_validator(mode="after")
    def _v_values(self):
        if self.type == "A":
            self.values = [_ipv4(v, self.name) for v in self.values]
        else:
            if len(self.values) != 1:
                raise PydanticCustomError("BadRequest", f"CNAME record set '{self.name}' must hold exactly one "
                                          f"record (it has {len(self.values)}).")
            self.values = [str(self.values[0]).strip().rstrip(".").lower()]
        return self

    def fqdn(self, zone: str) -> str:
        """The record's name in full, without the final dot."""
        return zone.lower() if self.name == "@" else f"{self.name}.{zone.lower()}"


def _ipv4(value, record: str) -> str:
    try:
        return str(ipaddress.IPv4Address(str(value).strip()))
    except ValueError:
        raise PydanticCustomError("BadRequest", f"The A record set '{record}' has an invalid IPv4 address "
                                  f"'{value}'.") from None


class VirtualNetworkLink(Model):
    """A zone's link to a VNet: the VNet resolves the zone (and registers its VMs in it when
    ``registration_enabled``). ``resolution_policy`` NxDomainRedirect makes a name missing from a
    privatelink zone resolve publicly instead of NXDOMAIN.
    https://learn.microsoft.com/azure/dns/private-dns-virtual-network-links
    https://learn.microsoft.com/azure/dns/private-dns-fallback"""

    name: str = Field(min_length=1, max_length=80)
    virtual_network: str = Field(description="the VNet's name or ARM id")
    registration_enabled: bool = False
    resolution_policy: Literal["Default", "NxDomainRedirect"] = "Default"
    tags: dict[str, str] = Field(default_factory=dict)

    @field_validator("virtual_network", mode="before")
    @classmethod
    def _v_vnet(cls, v):
        return name_of_ref(v)

    @field_validator("resolution_policy", mode="before")
    @classmethod
    def _v_policy(cls, v):
        return next((p for p in RESOLUTION_POLICIES if p.lower() == str(v).strip().lower()), v)


class PrivateDnsZone(Resource):
    """A private DNS zone (location ``global``): its record sets and its VNet links.
    https://learn.microsoft.com/azure/templates/microsoft.network/privatednszones"""

    name: str = Field(min_length=1, max_length=253)
    records: list[RecordSet] = Field(default_factory=list)
    virtual_network_links: list[VirtualNetworkLink] = Field(default_factory=list)

    @field_validator("name", mode="before")
    @classmethod
    def _v_name(cls, v):
        return str(v).strip().rstrip(".").lower()

    def link_to(self, vnet_name: str) -> VirtualNetworkLink | None:
        low = vnet_name.lower()
        return next((k for k in self.virtual_network_links if k.virtual_network.lower() == low), None)

    def record(self, name: str) -> list[RecordSet]:
        """The record sets of ``name`` (relative to the zone)."""
        low = name.lower()
        return [r for r in self.records if r.name == low]


class DnsServerZone(Model):
    """A zone a custom DNS server holds itself (authoritative): records as in a private DNS zone."""

    name: str = Field(min_length=1, max_length=253)
    records: list[RecordSet] = Field(default_factory=list)

    @field_validator("name", mode="before")
    @classmethod
    def _v_name(cls, v):
        return str(v).strip().rstrip(".").lower()


class DnsServerConfig(Model):
    """A VM that runs a DNS server (listening on UDP and TCP 53): the zones it holds, the
    conditional forwarders (zone -> servers) and the forwarders for everything else. No
    forwarders: it answers only what it holds (the client gets no answer for the rest).
    https://learn.microsoft.com/azure/virtual-network/virtual-networks-name-resolution-for-vms-and-role-instances#name-resolution-that-uses-your-own-dns-server"""

    forwarders: list[str] = Field(default_factory=list)
    conditional_forwarders: dict[str, list[str]] = Field(default_factory=dict)
    zones: list[DnsServerZone] = Field(default_factory=list)

    @field_validator("forwarders", mode="before")
    @classmethod
    def _v_forwarders(cls, v):
        return dns_server_addresses(v, "the DNS server's forwarders")

    @field_validator("conditional_forwarders", mode="before")
    @classmethod
    def _v_conditional(cls, v):
        return {str(zone).strip().rstrip(".").lower(): dns_server_addresses(servers, f"conditional forwarder {zone}")
                for zone, servers in (v or {}).items()}
