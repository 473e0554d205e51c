"""NSG evaluation: the first matching rule by priority decides.

A rule matches on protocol (``Tcp``, ``Udp``, ``Icmp`` or ``*``), source and destination
address (prefixes, their plural forms, service tags), and source and destination port
ranges (``*``, ``80``, ``1000-2000``, lists). User rules come first by priority, then the
six default rules. Outbound, a NIC's NSG is evaluated and then its subnet's; inbound, the
subnet's and then the NIC's; both must allow, and no NSG allows. NSGs are stateful: replies
of an allowed flow are not evaluated.
https://learn.microsoft.com/azure/virtual-network/network-security-group-how-it-works

Service tags are resolved in the context of the VNet where the NSG is applied:
``VirtualNetwork`` is that VNet's ranges, its connected peers' ranges, the host's virtual
IP 168.63.129.16 and the address prefixes of the user-defined routes on the VNet's subnets
(so a 0.0.0.0/0 UDR makes it match every address); ``AzureLoadBalancer`` is 168.63.129.16;
``Internet`` is public address space outside the VNet and its peers (UDR prefixes do not
take addresses out of it). https://learn.microsoft.com/azure/virtual-network/service-tags-overview

The other service tags (``Storage``, ``Sql``, ``AzureCloud``, ... and regional forms such as
``Storage.westeurope``) are in ``PLATFORM_TAGS``: the lab has no resources of those services yet,
so each stands for its documented platform address (``AzurePlatformDNS``, ``AzurePlatformIMDS``)
or for a /24 of the benchmarking range 198.18.0.0/16 (RFC 2544, never routed on the internet) in place
of Azure's published ranges. A tag vnetlab does not know is refused, saying so.

ICMP has no ports: an ICMP packet matches only rules whose port ranges cover every port.

Rules are indexed, not scanned: per protocol and destination port, the rules that can match
(their protocol and destination ports cover it) are listed once, in priority order, and only
they are compiled; a lookup walks that short list.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, collapse_addresses

from ..model import NetworkSecurityGroup, SecurityRule, Topology, VirtualNetwork
from ..model.errors import InvalidProtocol
from ..model.nsg import canonical_protocol, is_default_rule
from .routing import connected_peers

HOST_VIP = IPv4Network("168.63.129.16/32")
PROTOCOLS = ("Tcp", "Udp", "Icmp")
FULL_PORTS = ((0, 65535),)
EPHEMERAL = (32768, 60999)  # Linux's ip_local_port_range: the source port of a probe


class RuleError(ValueError):
    """A rule that cannot be compiled: bad prefix, bad port range, unknown tag."""


@dataclass(frozen=True)
class AddressSet:
    any: bool = False
    internet: bool = False
    nets: tuple[tuple[int, int], ...] = ()   # (network, mask)
    # for a VirtualNetwork tag: the VNet's own and peered ranges and the host VIP, outside which
    # Internet lies (``nets`` adds the UDR prefixes); None: ``nets`` itself
    local: tuple[tuple[int, int], ...] | None = None

    def contains(self, ip: int, vnet_set: "AddressSet") -> bool:
        if self.any:
            return True
        for net, mask in self.nets:
            if ip & mask == net:
                return True
        return self.internet and is_public(ip) and not vnet_set.is_local(ip)

    def is_local(self, ip: int) -> bool:
        return any(ip & mask == net for net, mask in (self.nets if self.local is None else self.local))

    @property
    def local_nets(self) -> tuple[tuple[int, int], ...]:
        return self.nets if self.local is None else self.local


PRIVATE_RANGES = [IPv4Network(p) for p in ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
                                     "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/3")]
_PRIVATE_MASKS = [(int(n.network_address), int(n.netmask)) for n in PRIVATE_RANGES]


def is_public(ip: int) -> bool:
    return not any(ip & mask == net for net, mask in _PRIVATE_MASKS)


def _nets(prefixes) -> tuple[tuple[int, int], ...]:
    return tuple((int(n.network_address), int(n.netmask)) for n in prefixes)


# -- service tags -------------------------------------------------------------------------------
# The service tags vnetlab resolves, as Azure spells them: the one list every face and check imports.
# VirtualNetwork, AzureLoadBalancer and Internet depend on the VNet (``virtual_network_tag``). For the
# platform tags Azure publishes ranges weekly (the Service Tags file); a lab has no Azure platform, so
# each gets its own /24 of the benchmarking range below (RFC 2544: never routed on the internet, so a lab
# address cannot clash with a real one), and AzureCloud all of it. The lab's other public addresses are
# in ``addressing`` (README "Public addresses of the lab").
# https://learn.microsoft.com/azure/virtual-network/service-tags-overview#available-service-tags
PLATFORM_RANGE = IPv4Network("198.18.0.0/16")
_PLATFORM_BLOCKS = ("Storage", "Sql", "AzureKeyVault", "AppService", "GatewayManager", "AzureFrontDoor.Backend",
                    "AzureFrontDoor.Frontend", "AzureMonitor", "AzureActiveDirectory", "EventHub", "ServiceBus",
                    "AzureCosmosDB", "AzureContainerRegistry", "ApiManagement", "AzureBackup")
PLATFORM_TAGS: dict[str, tuple[IPv4Network, ...]] = {
    **{tag: (block,) for tag, block in zip(_PLATFORM_BLOCKS, PLATFORM_RANGE.subnets(new_prefix=24), strict=False)},
    "AzureCloud": (PLATFORM_RANGE,),
    # documented addresses: https://learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16
    "AzurePlatformDNS": (HOST_VIP,),
    "AzurePlatformIMDS": (IPv4Network("169.254.169.254/32"),),
}
SERVICE_TAGS = ("VirtualNetwork", "AzureLoadBalancer", "Internet", *PLATFORM_TAGS)
# the tags Azure also publishes per region (Storage.westeurope): the same addresses in the lab
REGIONAL_TAGS = {"Storage", "Sql", "AzureKeyVault", "AppService", "AzureMonitor", "EventHub", "ServiceBus",
                 "AzureCosmosDB", "AzureContainerRegistry", "ApiManagement", "AzureBackup", "AzureCloud"}
_TAG_BY_LOWER = {t.lower(): t for t in SERVICE_TAGS}
ANY_ADDRESS = ("*", "any", "0.0.0.0/0")


def service_tag(value: str) -> str | None:
    """The service tag ``value`` names (case-insensitive), as Azure spells it (``Storage``,
    ``Storage.westeurope`` for a regional form); None otherwise."""
    low = value.strip().lower()
    if low in _TAG_BY_LOWER:
        return _TAG_BY_LOWER[low]
    base, _, region = low.rpartition(".")
    canon = _TAG_BY_LOWER.get(base)
    if canon in REGIONAL_TAGS and region.isalnum():
        return f"{canon}.{region}"
    return None


def tag_key(tag: str) -> str:
    """The name ``tag_map`` lists a canonical tag under: a regional form's tag (Storage.westeurope -> Storage)."""
    return tag if tag in _TAG_BY_LOWER.values() else tag.rpartition(".")[0]


def unknown_prefix(value: str) -> RuleError:
    text = value.strip()
    if text[:1].isdigit():
        return RuleError(f"{text!r} is not a valid IPv4 address prefix")
    return RuleError(f"{text!r} is not a service tag vnetlab knows (it knows {', '.join(SERVICE_TAGS)} and "
                     "the regional forms of "
                     f"{', '.join(sorted(REGIONAL_TAGS))}, e.g. Storage.westeurope)")


def udr_prefixes(topo: Topology, vnet: VirtualNetwork) -> list[IPv4Network]:
    """The IPv4 prefixes of the user-defined routes in the route tables on the VNet's subnets."""
    tables = {sn.route_table.lower() for sn in vnet.subnets if sn.route_table}
    out = []
    for table in topo.route_tables:
        if table.name.lower() in tables:
            for route in table.routes:
                try:
                    out.append(IPv4Network(route.address_prefix, strict=False))
                except ValueError:
                    continue  # a service tag as route prefix adds no addresses of its own
    return out


def virtual_network_tag(topo: Topology, vnet: VirtualNetwork | None) -> AddressSet:
    """VirtualNetwork: "the virtual network address space, ... peered virtual networks, ... the
    virtual IP address of the host, and address prefixes used on user-defined routes".
    https://learn.microsoft.com/azure/virtual-network/service-tags-overview#available-service-tags"""
    if vnet is None:
        return AddressSet(nets=_nets([HOST_VIP]))
    ranges = list(vnet.networks) + [n for remote, _ in connected_peers(topo, vnet) for n in remote.networks]
    # "all connected on-premises address spaces": the local network gateways' prefixes (engine.gateways)
    from .gateways import on_premises_prefixes
    ranges += [IPv4Network(p) for p in on_premises_prefixes(topo, vnet)]
    local = _nets(ranges + [HOST_VIP])
    extra = tuple(n for n in _nets(udr_prefixes(topo, vnet)) if n not in local)
    return AddressSet(nets=local + tuple(dict.fromkeys(extra)), local=local)


def tag_map(vnet_set: AddressSet) -> dict[str, list[str]]:
    """The service tags as prefixes, for a VNet context: what Azure lists as an NSG's tag map."""
    vnet_ranges = [IPv4Network((net, bin(mask).count("1"))) for net, mask in vnet_set.nets]
    local_ranges = [IPv4Network((net, bin(mask).count("1"))) for net, mask in vnet_set.local_nets]
    remaining = [IPv4Network("0.0.0.0/0")]
    for hole in PRIVATE_RANGES + local_ranges:  # Internet: public space outside the VNet and its peers
        out = []
        for net in remaining:
            if hole.subnet_of(net):
                out.extend(net.address_exclude(hole))
            elif not net.subnet_of(hole):
                out.append(net)
        remaining = out
    return {"VirtualNetwork": [str(n) for n in vnet_ranges], "AzureLoadBalancer": [str(HOST_VIP)],
            "Internet": [str(n) for n in collapse_addresses(remaining)],
            **{tag: [str(n) for n in nets] for tag, nets in PLATFORM_TAGS.items()}}


def flow_protocol(value: str) -> str:
    """The protocol of a flow (a trace, a probe, a Network Watcher check): Tcp, Udp or Icmp."""
    canon = canonical_protocol(value)
    if canon not in PROTOCOLS:
        raise InvalidProtocol(f"Protocol '{value}' is not supported: use Tcp, Udp or Icmp.")
    return canon


@lru_cache(maxsize=1 << 12)  # asked twice by each walk, with the few NSG pairs a lab has
def nsg_chain(direction: str, nic_nsg: str | None, subnet_nsg: str | None) -> tuple[tuple[str, str], ...]:
    """The NSGs a flow meets at a network interface, in Azure's order: outbound the NIC's then the
    subnet's, inbound the subnet's then the NIC's. ``(attached_to, nsg)`` with ``nic`` or ``subnet``.
    https://learn.microsoft.com/azure/virtual-network/network-security-group-how-it-works"""
    chain = [("nic", nic_nsg), ("subnet", subnet_nsg)]
    if direction == "Inbound":
        chain.reverse()
    return tuple((where, name) for where, name in chain if name)


def parse_ports(values: list[str]) -> tuple[tuple[int, int], ...]:
    """Port ranges as a rule gives them ('*', '80', '1000-2000', '22,443'), as inclusive pairs."""
    ports = _port_numbers(values)
    if ports is None:
        return _parse_ports(tuple(values))
    return ((ports[0], ports[0]),) if len(ports) == 1 else _merged((p, p) for p in ports)


def check_ports(values: list[str]) -> None:
    """Raise ``RuleError`` where ``parse_ports`` would, without building its answer for port numbers."""
    if _port_numbers(values) is None:
        _parse_ports(tuple(values))  # what parse_ports does then, without reading the numbers again


def _port_numbers(values: list[str]) -> list[int] | None:
    """The ports when every value is one port number (a large lab's usual rule, with more distinct
    lists than ``_parse_ports``' cache holds), read without the cache; None for anything else."""
    ports = []
    for value in values:
        if type(value) is not str or not (value.isascii() and value.isdigit()) or len(value) > 5:
            return None
        port = int(value)
        if port > 65535:
            return None
        ports.append(port)
    return ports or None


@lru_cache(maxsize=1 << 16)  # a large lab repeats its port lists; bounded for a long-running server
def _parse_ports(values: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    out = []
    for value in values:
        for part in str(value).split(","):
            part = part.strip()
            if part in ("*", "", "Any"):
                return FULL_PORTS
            lo, _, hi = part.partition("-")
            try:
                lo_i, hi_i = int(lo), int(hi or lo)
            except ValueError:
                raise RuleError(f"invalid port range {part!r}") from None
            if not (0 <= lo_i <= hi_i <= 65535):
                raise RuleError(f"invalid port range {part!r}")
            out.append((lo_i, hi_i))
    return _merged(out)


def _merged(ranges) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []   # one form per set of ports: '22', '0-65535' is every port
    for lo_i, hi_i in sorted(ranges):
        if merged and lo_i <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi_i))
        else:
            merged.append((lo_i, hi_i))
    return tuple(merged)


def address_set(values: list[str], vnet_set: AddressSet) -> AddressSet:
    nets: list[tuple[int, int]] = []
    internet = False
    for value in values:
        meaning = address_meaning(value)
        if meaning is ANY_SET:
            return ANY_SET
        if meaning is None:
            raise unknown_prefix(value)
        if type(meaning) is tuple:
            nets.append(meaning)
        elif meaning == "VirtualNetwork":
            nets += vnet_set.nets
        elif meaning == "AzureLoadBalancer":
            nets += _nets([HOST_VIP])
        elif meaning == "Internet":
            internet = True
        else:
            nets += _nets(PLATFORM_TAGS[tag_key(meaning)])
    return AddressSet(internet=internet, nets=tuple(nets))


ANY_SET = AddressSet(any=True)
_DOTTED = re.compile(r"([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})(?:/([0-9]{1,2}))?")


@lru_cache(maxsize=1 << 18)  # a large lab names hundreds of thousands of prefixes, many of them often
def address_meaning(value: str) -> AddressSet | str | tuple[int, int] | None:
    """What one address value of a rule means: ANY_SET, a service tag's name, (network, mask), or None."""
    if value.strip().lower() in ANY_ADDRESS:
        return ANY_SET
    return service_tag(value) or prefix_bits(value.strip())


def prefix_bits(prefix: str) -> tuple[int, int] | None:
    """(network, mask) of a prefix or address as ``IPv4Network(prefix, strict=False)`` reads it, None
    for what is not one. The a.b.c.d/n form is read without building an IPv4Network."""
    m = _DOTTED.fullmatch(prefix)
    if m and all(len(o) == 1 or o[0] != "0" for o in m.groups()[:4]):
        octets = [int(o) for o in m.groups()[:4]]
        length = int(m.group(5)) if m.group(5) is not None else 32
        if max(octets) <= 255 and length <= 32:
            ip = (octets[0] << 24) | (octets[1] << 16) | (octets[2] << 8) | octets[3]
            mask = (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF
            return ip & mask, mask
    try:
        n = IPv4Network(prefix, strict=False)
    except ValueError:
        return None
    return int(n.network_address), int(n.netmask)


@dataclass(frozen=True)
class CompiledRule:
    rule: SecurityRule
    default: bool
    protocols: frozenset[str]
    sources: AddressSet
    destinations: AddressSet
    source_ports: tuple[tuple[int, int], ...]
    destination_ports: tuple[tuple[int, int], ...]

    def matches_addresses(self, src: int, dst: int, sport: int | None, vnet_set: AddressSet) -> bool:
        return (self.sources.contains(src, vnet_set) and self.destinations.contains(dst, vnet_set)
                and ports_match(self.source_ports, sport))


def ports_match(ranges, port: int | None) -> bool:
    if ranges == FULL_PORTS:
        return True
    lo, hi = (port, port) if port is not None else EPHEMERAL
    return any(a <= lo and hi <= b for a, b in ranges)


def compile_rule(rule: SecurityRule, vnet_set: AddressSet, default: bool) -> CompiledRule:
    protocols = frozenset(PROTOCOLS) if rule.protocol == "*" else frozenset({rule.protocol})
    return CompiledRule(rule, default, protocols, address_set(rule.sources(), vnet_set),
                        address_set(rule.destinations(), vnet_set), parse_ports(rule.source_ports()),
                        parse_ports(rule.destination_ports()))


def covers(ranges: tuple[tuple[int, int], ...], port: int) -> bool:
    return any(lo <= port <= hi for lo, hi in ranges)


def may_match(rule: SecurityRule, protocol: str, port: int | None) -> bool:
    """``rule`` can match a flow of ``protocol`` to ``port``: its protocol and destination ports cover
    it (ICMP has no ports: only a rule whose source and destination ranges cover every port)."""
    if rule.protocol != "*" and rule.protocol != protocol:
        return False
    if protocol == "Icmp":
        return _every_port(rule)
    single = _one_port(rule)
    if single is not None:
        return single == (port or 0)
    values = rule.destination_ports()
    simple = _simple_cover(values, port or 0)
    return covers(parse_ports(values), port or 0) if simple is None else simple


def _every_port(rule: SecurityRule, destinations: tuple[tuple[int, int], ...] | None = None) -> bool:
    """The rule's source and destination ranges cover every port: the only rules an ICMP flow may match.
    ``destinations``: its destination ports, when already parsed."""
    destinations = parse_ports(rule.destination_ports()) if destinations is None else destinations
    return destinations == FULL_PORTS and parse_ports(rule.source_ports()) == FULL_PORTS


def _one_port(rule: SecurityRule) -> int | None:
    """The rule's destination port when it names exactly one port number (a large lab's usual rule)."""
    single = rule.destination_port_range
    if not rule.destination_port_ranges and single is not None and single.isdigit() and single.isascii() \
            and len(single) <= 5 and int(single) <= 65535:
        return int(single)
    return None


PortCover = dict  # {"ports": {protocol: [[lo, hi], ...]}, "icmp": [protocol, ...]}, as JSON keeps it


def port_cover(rules: list[SecurityRule]) -> PortCover:
    """What flows some of ``rules`` may match, small enough to keep beside them: per rule protocol, the
    destination ports its rules cover (merged ranges), and the protocols of the rules that cover every
    port both ways. ``cover_may_match(port_cover(rules), protocol, port)`` is
    ``any(may_match(rule, protocol, port) for rule in rules)``: a reader asking a few flows skips the
    NSGs none of whose rules can decide them (the store keeps each NSG's cover, ``Lab.topology_for``)."""
    ranges: dict[str, list[tuple[int, int]]] = {}
    every_port: set[str] = set()
    for rule in rules:
        found = ranges.setdefault(rule.protocol, [])
        values = rule.destination_ports()
        numbers = _port_numbers(values)  # a large lab's usual rule, read without parse_ports' cache and merge
        if numbers is not None:
            found += [(port, port) for port in numbers]
            continue
        destinations = parse_ports(values)
        found += destinations
        if _every_port(rule, destinations):
            every_port.add(rule.protocol)
    return {"ports": {protocol: [list(r) for r in _merged(found)] for protocol, found in ranges.items()},
            "icmp": sorted(every_port)}


def cover_may_match(cover: PortCover, protocol: str, port: int | None) -> bool:
    """Some rule of the NSG whose ``port_cover`` this is ``may_match`` a flow of ``protocol`` to ``port``."""
    for rule_protocol in {protocol, "*"}:  # a rule matches its own protocol, or any with '*'
        if protocol == "Icmp":
            if rule_protocol in cover["icmp"]:
                return True
        elif covers(cover["ports"].get(rule_protocol, ()), port or 0):
            return True
    return False


def _simple_cover(values: list[str], port: int) -> bool | None:
    """``covers(parse_ports(values), port)`` when every value is a single port or ``*`` (a large lab's
    usual rule, and too many distinct port lists for parse_ports' cache); None for anything else."""
    hit = False
    for value in values:
        if type(value) is not str or not (value.isascii() and value.isdigit()) or len(value) > 5 or int(value) > 65535:
            if value in ("*", "", "Any"):
                return True
            return None
        hit = hit or int(value) == port
    return hit


class CompiledNsg:
    """One NSG in one direction, compiled for the VNet it is applied in. A rule's addresses are
    compiled when a flow first needs it: for one port only the few rules covering that port are,
    of the hundreds a large NSG may hold (``rules`` compiles them all)."""

    def __init__(self, nsg: NetworkSecurityGroup, direction: str, vnet_set: AddressSet,
                 matching: Callable[[str, int | None], frozenset[int]] | None = None):
        """``matching(protocol, port)``: the ids of the NSG's rules that ``may_match`` the flow, when the
        caller already knows them (``LabView.rules_matching``)."""
        self.nsg, self.direction, self.vnet_set, self._matching = nsg, direction, vnet_set, matching
        self._models = nsg.rules(direction)
        self._compiled: list[CompiledRule | None] = [None] * len(self._models)
        self._candidates: dict[tuple[str, int | None], list[CompiledRule]] = {}

    def _rule(self, i: int) -> CompiledRule:
        compiled = self._compiled[i]
        if compiled is None:
            rule = self._models[i]
            compiled = self._compiled[i] = compile_rule(rule, self.vnet_set, is_default_rule(rule))
        return compiled

    @property
    def rules(self) -> list[CompiledRule]:
        """Every rule, compiled, in evaluation order."""
        return [self._rule(i) for i in range(len(self._models))]

    def candidates(self, protocol: str, port: int | None) -> list[CompiledRule]:
        """The rules that can match a flow of ``protocol`` to ``port``, in priority order: their protocol
        and destination ports cover it. ICMP has no ports: only rules whose source and destination
        ranges cover every port match it."""
        key = (protocol, port if protocol != "Icmp" else None)
        found = self._candidates.get(key)
        if found is None and self._matching is not None:
            ids = self._matching(protocol, port)
            found = self._candidates[key] = [self._rule(i) for i, rule in enumerate(self._models) if id(rule) in ids]
        elif found is None:
            found = self._candidates[key] = [self._rule(i) for i, rule in enumerate(self._models)
                                             if may_match(rule, protocol, port)]
        return found

    def evaluate(self, protocol: str, src: IPv4Address | int, dst: IPv4Address | int, port: int | None,
                 sport: int | None = None) -> CompiledRule:
        """The first rule that matches; the default Deny rule always matches last."""
        src_i, dst_i = int(src), int(dst)
        for rule in self.candidates(protocol, port):
            if rule.matches_addresses(src_i, dst_i, sport, self.vnet_set):
                return rule
        return self._rule(len(self._models) - 1)
