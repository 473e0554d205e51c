"""Addresses in a subnet, the way Azure hands them out.

Azure reserves five addresses in every subnet: the network address, .1 (the default
gateway), .2 and .3 (Azure DNS), and the last (broadcast). A VM's dynamic address is the
lowest free one from .4 up. App Service VNet integration takes one address per plan
instance, from the top of the subnet downwards: the note's 10.0.0.190 is the last usable
address of 10.0.0.128/26.
https://learn.microsoft.com/azure/virtual-network/virtual-networks-faq#are-there-any-restrictions-on-using-ip-addresses-within-these-subnets
"""

from __future__ import annotations

import hashlib
import itertools
from ipaddress import IPv4Address, IPv4Network

from ..model import Topology

RESERVED_COUNT = 5
APP_OUTBOUND_NET = IPv4Network("198.51.100.0/24")   # App Service shared outbound addresses (RFC 5737)
VM_OUTBOUND_NET = IPv4Network("192.0.2.0/24")       # default outbound access of VMs (RFC 5737)
# public IP addresses and prefixes the lab's user creates (RFC 2544's second /16: never on the internet;
# the first, 198.18.0.0/16, holds the platform service tags, security.PLATFORM_RANGE)
LAB_PUBLIC_NET = IPv4Network("198.19.0.0/16")


def reserved(net: IPv4Network) -> set[IPv4Address]:
    base = int(net.network_address)
    return {IPv4Address(base + i) for i in range(4)} | {net.broadcast_address}


def usable_count(net: IPv4Network) -> int:
    return max(net.num_addresses - RESERVED_COUNT, 0)


def is_usable(net: IPv4Network, ip: IPv4Address) -> bool:
    return ip in net and ip not in reserved(net)


def lowest_free(net: IPv4Network, taken: set[IPv4Address], start: int = 0) -> IPv4Address | None:
    """The lowest usable address of ``net`` not in ``taken``; ``start`` (an address as an int): every
    usable address below it is known to be taken (one subnet's thousand NICs are addressed in one pass)."""
    first, last = int(net.network_address) + 4, int(net.broadcast_address) - 1
    return next((ip for i in range(max(first, start), last + 1) if (ip := IPv4Address(i)) not in taken), None)


def top_down(net: IPv4Network, count: int, skip: int = 0) -> list[IPv4Address]:
    """``count`` addresses from the last usable one downwards, after ``skip`` taken ones."""
    last = int(net.broadcast_address) - 1
    first = int(net.network_address) + 4
    return [IPv4Address(last - skip - i) for i in range(count) if last - skip - i >= first]


def plans_in_subnet(topo: Topology, subnet_ref: str) -> list[str]:
    """Plans whose apps are integrated with a subnet, in a stable order (by name)."""
    low = subnet_ref.lower()
    names = {app.plan.lower() for app in topo.web_apps if (app.vnet_integration or "").lower() == low}
    return sorted(names)


def integration_addresses(topo: Topology) -> dict[tuple[str, str], list[IPv4Address]]:
    """(plan, VNET/SUBNET) -> one address per plan instance, top of the subnet down."""
    out: dict[tuple[str, str], list[IPv4Address]] = {}
    refs = sorted({app.vnet_integration.lower() for app in topo.web_apps if app.vnet_integration})
    for ref in refs:
        found = topo.subnet(ref)
        if not found:
            continue
        net = found[1].network
        used = 0
        for plan_name in plans_in_subnet(topo, ref):
            plan = topo.find("app_service_plans", plan_name)
            count = plan.instances if plan else 1
            out[(plan_name, ref)] = top_down(net, count, skip=used)
            used += count
    return out


def settle_app_service_links(new: Topology, old: Topology | None) -> None:
    """Deleting an app (or its plan) without disconnecting it first leaves the subnet's
    AppServiceLink behind: kept here as the plan's name until an app of that plan integrates with
    the subnet again (then disconnecting removes it, the docs' workaround).
    https://learn.microsoft.com/azure/app-service/overview-vnet-integration#troubleshooting"""
    for vnet in new.virtual_networks:
        old_vnet = old.vnet(vnet.name) if old is not None else None
        for sn in vnet.subnets:
            old_sn = old_vnet.subnet(sn.name) if old_vnet is not None else None
            links = {p.lower(): p for p in (old_sn.service_association_links if old_sn else [])}
            if old_sn is not None:
                for app in old.apps_integrated_with(vnet.name, sn.name):
                    if new.find("web_apps", app.name) is None:  # deleted while integrated
                        links.setdefault(app.plan.lower(), app.plan)
            for app in new.apps_integrated_with(vnet.name, sn.name):
                links.pop(app.plan.lower(), None)  # a live link again
            sn.service_association_links = sorted(links.values(), key=str.lower)


def _hashed_pick(seed: str, net: IPv4Network, taken: set[IPv4Address]) -> IPv4Address:
    size = net.num_addresses - 20
    start = int(hashlib.sha256(seed.encode()).hexdigest(), 16) % size
    for i in range(size):
        ip = IPv4Address(int(net.network_address) + 10 + (start + i) % size)
        if ip not in taken:
            return ip
    return IPv4Address(int(net.network_address) + 10 + start)  # all taken: shared, as platform SNAT addresses are


def public_outbound_addresses(topo: Topology) -> dict[tuple[str, str], IPv4Address]:
    """("web_apps"|"network_interfaces", name) -> the public source address of its internet traffic.

    Each web app has its own; a VM's default outbound access uses one address per VNet."""
    out: dict[tuple[str, str], IPv4Address] = {}
    taken: set[IPv4Address] = set()
    for app in sorted(topo.web_apps, key=lambda r: r.name.lower()):
        ip = _hashed_pick(f"web_apps/{app.name.lower()}", APP_OUTBOUND_NET, taken)
        taken.add(ip)
        out[("web_apps", app.name.lower())] = ip
    per_vnet: dict[str, IPv4Address] = {}
    taken = set()
    for vnet in sorted(topo.virtual_networks, key=lambda v: v.name.lower()):
        per_vnet[vnet.name.lower()] = _hashed_pick(f"vnet/{vnet.name.lower()}", VM_OUTBOUND_NET, taken)
        taken.add(per_vnet[vnet.name.lower()])
    for nic in topo.network_interfaces:
        vnet_name = nic.subnet.split("/")[0].lower()
        if vnet_name in per_vnet:
            out[("network_interfaces", nic.name.lower())] = per_vnet[vnet_name]
    return out


def address_availability(topo: Topology, vnet_name: str, ip: IPv4Address, suggestions: int = 5
                         ) -> tuple[bool, list[IPv4Address]]:
    """Whether ``ip`` is free for a NIC in the VNet (in a subnet, not reserved, not held by a NIC or
    an App Service integration), and the next free addresses of its subnet when it is not.
    An address in no subnet of the VNet is not available and has no suggestions.
    https://learn.microsoft.com/rest/api/virtualnetwork/virtual-networks/check-ip-address-availability"""
    vnet = topo.vnet(vnet_name)
    subnet = next((s for s in vnet.subnets if ip in s.network), None) if vnet else None
    if subnet is None:
        return False, []
    net = subnet.network
    taken = {IPv4Address(ip) for n in topo.nics_in(vnet.name, subnet.name) for ip in n.addresses}
    for (_plan, ref), addresses in integration_addresses(topo).items():
        if ref == f"{vnet.name}/{subnet.name}".lower():
            taken.update(addresses)
    taken |= reserved(net)
    if ip not in taken:
        return True, []
    free = (IPv4Address(i) for i in range(int(ip) + 1, int(net.broadcast_address)) if IPv4Address(i) not in taken)
    return False, list(itertools.islice(free, suggestions))
