"""Network security groups and their rules, with the six default rules.

https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from .base import Model, Resource

# The protocols a rule takes, as Azure spells them: every face normalises a protocol with this table.
# https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview#security-rules
PROTOCOLS = {"tcp": "Tcp", "udp": "Udp", "icmp": "Icmp", "esp": "Esp", "ah": "Ah", "*": "*", "any": "*"}


def canonical_protocol(value) -> str | None:
    """``value`` as Azure spells the protocol (case-insensitive), or None if it is not one."""
    return PROTOCOLS.get(str(value).strip().lower())


def _as_list(v):
    if v is None:
        return []
    if isinstance(v, (str, int)):
        return [str(v)]
    return [str(x) for x in v]


_CANONICAL_WORDS = frozenset({"Inbound", "Outbound", "Allow", "Deny"})
_CANONICAL_PROTOCOLS = frozenset(PROTOCOLS.values())
_SINGULAR_KEYS = ("source_port_range", "destination_port_range", "source_address_prefix", "destination_address_prefix")
_PLURAL_KEYS = ("source_port_ranges", "destination_port_ranges", "source_address_prefixes",
                "destination_address_prefixes")


class SecurityRule(Model):
    name: str = Field(min_length=1, max_length=80)
    priority: int
    direction: Literal["Inbound", "Outbound"] = "Inbound"
    access: Literal["Allow", "Deny"] = "Allow"
    protocol: str = "*"
    description: str = ""
    source_address_prefix: str | None = None
    source_address_prefixes: list[str] = Field(default_factory=list)
    destination_address_prefix: str | None = None
    destination_address_prefixes: list[str] = Field(default_factory=list)
    source_port_range: str | None = None
    source_port_ranges: list[str] = Field(default_factory=list)
    destination_port_range: str | None = None
    destination_port_ranges: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _normalize(cls, data):
        """Enums in any letter case, integer ports and prefixes, one value for a plural key. A large lab
        has hundreds of thousands of rules, nearly all already in this form (a stored lab always):
        they are passed on as they are, without a copy."""
        if not isinstance(data, dict):
            return data
        out = data
        for key in ("direction", "access"):
            value = data.get(key)
            if isinstance(value, str) and value not in _CANONICAL_WORDS:
                out = out if out is not data else dict(data)
                out[key] = value.capitalize()
        for key in _SINGULAR_KEYS:
            if isinstance(data.get(key), int):
                out = out if out is not data else dict(data)
                out[key] = str(data[key])
        for key in _PLURAL_KEYS:
            if key in data:
                value = data[key]
                if type(value) is not list or not all(type(x) is str for x in value):
                    out = out if out is not data else dict(data)
                    out[key] = _as_list(value)
        return out

    @field_validator("protocol")
    @classmethod
    def _v_protocol(cls, v):
        if v in _CANONICAL_PROTOCOLS:
            return v
        canon = canonical_protocol(v)
        if canon is None:
            raise ValueError(f"protocol {v!r} is not one of Tcp, Udp, Icmp, Esp, Ah, *")
        return canon

    # the singular and plural forms are alternatives; these give the effective lists
    def sources(self) -> list[str]:
        return self.source_address_prefixes or [self.source_address_prefix or "*"]

    def destinations(self) -> list[str]:
        return self.destination_address_prefixes or [self.destination_address_prefix or "*"]

    def source_ports(self) -> list[str]:
        return self.source_port_ranges or [self.source_port_range or "*"]

    def destination_ports(self) -> list[str]:
        return self.destination_port_ranges or [self.destination_port_range or "*"]


def _default(name, priority, direction, access, src, dst):
    return SecurityRule(name=name, priority=priority, direction=direction, access=access, protocol="*",
                        source_address_prefix=src, destination_address_prefix=dst,
                        source_port_range="*", destination_port_range="*",
                        description="")


# Names, casing and priorities exactly as Azure prints them.
# https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview#default-security-rules
DEFAULT_SECURITY_RULES: tuple[SecurityRule, ...] = (
    _default("AllowVNetInBound", 65000, "Inbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    _default("AllowAzureLoadBalancerInBound", 65001, "Inbound", "Allow", "AzureLoadBalancer", "*"),
    _default("DenyAllInbound", 65500, "Inbound", "Deny", "*", "*"),
    _default("AllowVnetOutBound", 65000, "Outbound", "Allow", "VirtualNetwork", "VirtualNetwork"),
    _default("AllowInternetOutBound", 65001, "Outbound", "Allow", "*", "Internet"),
    _default("DenyAllOutBound", 65500, "Outbound", "Deny", "*", "*"),
)


_DEFAULT_RULE_IDS = frozenset(id(r) for r in DEFAULT_SECURITY_RULES)


def is_default_rule(rule: SecurityRule) -> bool:
    """One of the six default rules (NetworkSecurityGroup.rules hands out these very objects)."""
    return id(rule) in _DEFAULT_RULE_IDS


class NetworkSecurityGroup(Resource):
    security_rules: list[SecurityRule] = Field(default_factory=list)

    def rules(self, direction: str) -> list[SecurityRule]:
        """User rules then default rules of one direction, in evaluation order."""
        mine = sorted((r for r in self.security_rules if r.direction == direction), key=lambda r: r.priority)
        return mine + [r for r in DEFAULT_SECURITY_RULES if r.direction == direction]
