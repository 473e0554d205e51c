"""Virtual machines: what the lab needs of them (a NIC and the services they listen on).

https://learn.microsoft.com/azure/templates/microsoft.compute/virtualmachines
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .base import Model, Resource
from .dns import DnsServerConfig
from .nsg import canonical_protocol


class Service(Model):
    port: int = Field(ge=1, le=65535)
    protocol: Literal["Tcp", "Udp"] = "Tcp"
    command: str | None = None

    @field_validator("protocol", mode="before")
    @classmethod
    def _v_proto(cls, v):
        return canonical_protocol(v) or v


class VirtualMachine(Resource):
    network_interface: str
    vm_size: str = "Standard_B1s"
    services: list[Service] = Field(default_factory=list)
    # Forwarding in the guest OS (net.ipv4.ip_forward), a setting apart from the NIC's Azure-side
    # enable_ip_forwarding: an appliance needs both. Unset, it follows the NIC's setting (a VM
    # whose NIC forwards is taken for an appliance image that routes); false makes it a host.
    # https://learn.microsoft.com/azure/virtual-network/virtual-network-network-interface#enable-or-disable-ip-forwarding
    guest_ip_forwarding: bool | None = None
    # The VM runs a DNS server (custom DNS): what it holds and where it forwards.
    # https://learn.microsoft.com/azure/virtual-network/virtual-networks-name-resolution-for-vms-and-role-instances#name-resolution-that-uses-your-own-dns-server
    dns_server: DnsServerConfig | None = None
    # running; stopped (az vm stop: the OS is off, the VM stays allocated); deallocated (az vm
    # deallocate: off and released; a registration link's record of it is removed meanwhile).
    # https://learn.microsoft.com/azure/virtual-machines/states-billing
    power_state: Literal["running", "stopped", "deallocated"] = "running"

    @field_validator("power_state", mode="before")
    @classmethod
    def _v_power(cls, v):
        text = str(v).strip().lower()
        return text.removeprefix("powerstate/") if text.startswith("powerstate/") else text

    @property
    def running(self) -> bool:
        return self.power_state == "running"

    @property
    def allocated(self) -> bool:
        return self.power_state != "deallocated"

    def start(self) -> None:
        self.power_state = "running"

    def power_off(self) -> None:
        self.power_state = "stopped"

    def deallocate(self) -> None:
        self.power_state = "deallocated"
