"""Public IP addresses, public IP prefixes and NAT gateways: what the internet sees as a source.

https://learn.microsoft.com/azure/templates/microsoft.network/publicipaddresses
https://learn.microsoft.com/azure/templates/microsoft.network/publicipprefixes
https://learn.microsoft.com/azure/templates/microsoft.network/natgateways
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from .base import Resource

MIN_IDLE_TIMEOUT, MAX_IDLE_TIMEOUT = 4, 120   # a NAT gateway's TCP idle timeout, minutes


class PublicIpAddress(Resource):
    """A Standard static IPv4 public address. ``ip_address`` unset: the lab allocates one from its
    public range (198.19.0.0/17) and keeps it (as Azure keeps a static address)."""

    ip_address: str | None = None
    sku: Literal["Standard", "Basic"] = "Standard"

    @field_validator("sku", mode="before")
    @classmethod
    def _v_sku(cls, v):
        return str(v).capitalize() if isinstance(v, str) else v


class PublicIpPrefix(Resource):
    """A contiguous block of Standard public addresses; ``ip_prefix`` unset: allocated by the lab
    (from 198.19.128.0/17) and kept. https://learn.microsoft.com/azure/virtual-network/ip-services/public-ip-address-prefix"""

    prefix_length: int = Field(default=28, ge=28, le=31)
    ip_prefix: str | None = None


class NatGateway(Resource):
    """A NAT gateway: its public addresses and prefixes (at most 16 addresses), TCP idle timeout 4-120
    minutes. Subnets attach it (``nat_gateway`` on the subnet).
    https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource"""

    public_ip_addresses: list[str] = Field(default_factory=list)
    public_ip_prefixes: list[str] = Field(default_factory=list)
    idle_timeout_in_minutes: int = 4
    sku: Literal["Standard"] = "Standard"

    @field_validator("idle_timeout_in_minutes")
    @classmethod
    def _v_idle(cls, v: int, info: ValidationInfo) -> int:
        # "TCP idle timeout can be adjusted from 4 minutes (default) to 120 minutes (2 hours)"
        # https://learn.microsoft.com/azure/nat-gateway/nat-gateway-resource#timers (the text is modelled on
        # Azure's for a public IP's idle timeout; the code is vnetlab's)
        if not MIN_IDLE_TIMEOUT <= v <= MAX_IDLE_TIMEOUT:
            raise PydanticCustomError(
                "NatGatewayInvalidIdleTimeout",
                f"NAT gateway {info.data.get('name') or '?'} has invalid Idle Timeout {v}. The value must be between "
                f"{MIN_IDLE_TIMEOUT} and {MAX_IDLE_TIMEOUT} minutes.")
        return v
