"""Property tests: the indexed longest-prefix lookup and the indexed NSG evaluation agree with
naive readings of the docs on random inputs.

The NSG reference below is written from Azure's documentation with ``ipaddress`` and string
parsing only: it imports nothing from the engine, so a misreading in the engine's helpers cannot
hide in the reference too.
"""

from ipaddress import IPv4Address, IPv4Network, ip_network

from hypothesis import example, given, settings
from hypothesis import strategies as st

from vnetlab.engine.routing import EffectiveRoute, RouteLookup
from vnetlab.engine.network import LabView
from vnetlab.model import Topology

ips = st.integers(min_value=0, max_value=2**32 - 1)
prefixes = st.builds(lambda ip, plen: str(IPv4Network((ip, plen), strict=False)), ips,
                     st.integers(min_value=0, max_value=32))
hops = st.sampled_from(["VnetLocal", "Internet", "None", "VirtualAppliance"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(prefixes, hops), min_size=1, max_size=30), st.lists(ips, min_size=1, max_size=20))
def test_longest_prefix_match_agrees_with_a_scan(routes, probes):
    table = {}
    for prefix, hop in routes:
        table[prefix] = EffectiveRoute("User", "Active", prefix, hop)
    lookup = RouteLookup(list(table.values()))
    for value in probes:
        ip = IPv4Address(value)
        matching = [r for r in table.values() if ip in r.network]
        expected = max(matching, key=lambda r: r.network.prefixlen) if matching else None
        assert lookup.route_for(ip) == expected


# -- NSG: a reference from the docs --------------------------------------------------------------------
# The lab the NSG is applied in: one VNet, no peers, no route tables.
VNET_SPACE = [ip_network("10.1.0.0/16")]
# Service tags https://learn.microsoft.com/azure/virtual-network/service-tags-overview#available-service-tags
# VirtualNetwork: "the virtual network address space, ... the virtual IP address of the host";
# AzureLoadBalancer: the host's virtual IP 168.63.129.16
# https://learn.microsoft.com/azure/virtual-network/what-is-ip-address-168-63-129-16
HOST_VIP = ip_network("168.63.129.16/32")
VIRTUAL_NETWORK = VNET_SPACE + [HOST_VIP]
# Internet: "the IP address space that's outside the virtual network and reachable by the public internet":
# not the VNet, and none of the IANA special-purpose ranges no internet host uses (RFC 6890).
NOT_ON_INTERNET = [ip_network(p) for p in ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8",
                                           "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "224.0.0.0/3")]
# The default rules, as the docs' table lists them
# https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview#default-security-rules
DEFAULTS = {"Inbound": [("AllowVNetInBound", "VirtualNetwork", "VirtualNetwork", "Allow"),
                        ("AllowAzureLoadBalancerInBound", "AzureLoadBalancer", "*", "Allow"),
                        ("DenyAllInbound", "*", "*", "Deny")],
            "Outbound": [("AllowVnetOutBound", "VirtualNetwork", "VirtualNetwork", "Allow"),
                         ("AllowInternetOutBound", "*", "Internet", "Allow"),
                         ("DenyAllOutBound", "*", "*", "Deny")]}


def address_matches(specs: list[str], ip: IPv4Address) -> bool:
    """A rule's source or destination: ``*``, a prefix or an address, or a service tag (any casing)."""
    for spec in specs:
        word = spec.strip().lower()
        if word == "*":
            return True
        if word == "virtualnetwork":
            hit = any(ip in net for net in VIRTUAL_NETWORK)
        elif word == "azureloadbalancer":
            hit = ip in HOST_VIP
        elif word == "internet":
            hit = not any(ip in net for net in VIRTUAL_NETWORK + NOT_ON_INTERNET)
        else:
            hit = ip in ip_network(word, strict=False)
        if hit:
            return True
    return False


def port_matches(specs: list[str], port: int | None) -> bool:
    """A rule's port ranges (``*``, ``80``, ``1000-2000``, comma lists). ICMP has no port (None):
    only ranges that cover every port match it."""
    ranges = []
    for spec in specs:
        for part in spec.split(","):
            lo, _, hi = part.strip().partition("-")
            if lo == "*":
                return True
            ranges.append((int(lo), int(hi or lo)))
    if port is not None:
        return any(low <= port <= high for low, high in ranges)
    next_uncovered = 0
    for low, high in sorted(ranges):
        if low > next_uncovered:
            return False
        next_uncovered = max(next_uncovered, high + 1)
    return next_uncovered > 65535


def first_match(rules: list[dict], direction: str, protocol: str, src: str, dst: str, sport: int | None,
                dport: int | None) -> str:
    """"Rules are processed in priority order ... once traffic matches a rule, processing stops."
    https://learn.microsoft.com/azure/virtual-network/network-security-groups-overview#security-rules"""
    mine = sorted((r for r in rules if r["direction"] == direction), key=lambda r: r["priority"])
    ordered = [(r["name"], r["protocol"], r.get("source_address_prefixes") or [r["source_address_prefix"]],
                r.get("destination_address_prefixes") or [r["destination_address_prefix"]],
                r.get("source_port_ranges") or [r["source_port_range"]],
                r.get("destination_port_ranges") or [r["destination_port_range"]]) for r in mine]
    ordered += [(name, "*", [s], [d], ["*"], ["*"]) for name, s, d, _ in DEFAULTS[direction]]
    for name, proto, sources, destinations, sports, dports in ordered:
        if proto not in ("*", protocol):
            continue
        if (address_matches(sources, IPv4Address(src)) and address_matches(destinations, IPv4Address(dst))
                and port_matches(sports, sport) and port_matches(dports, dport)):
            return name
    raise AssertionError("the last default rule matches everything")


addresses = st.sampled_from(["*", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "10.1.2.3",
                             "192.168.0.0/16", "VirtualNetwork", "virtualnetwork", "Internet", "AzureLoadBalancer",
                             "203.0.113.0/24", "8.8.8.8/32"])
port_specs = st.sampled_from(["*", "22", "80", "443", "1000-2000", "80-90", "53", "0-65535", "1024-65535",
                              "32768-60999", "22,80"])


def _prefixes(key: str):
    """A rule's addresses in the singular form or, sometimes, as the plural list."""
    return st.one_of(st.builds(lambda a: {f"{key}_address_prefix": a}, addresses),
                     st.builds(lambda a: {f"{key}_address_prefix": a[0], f"{key}_address_prefixes": a},
                               st.lists(addresses.filter(lambda a: a != "*"), min_size=1, max_size=3)))


def _ports(key: str):
    return st.one_of(st.builds(lambda p: {f"{key}_port_range": p}, port_specs),
                     st.builds(lambda p: {f"{key}_port_range": p[0], f"{key}_port_ranges": p},
                               st.lists(port_specs.filter(lambda p: p != "*"), min_size=1, max_size=3)))


rules = st.builds(
    lambda i, direction, access, proto, src, dst, sport, dport: {
        "name": f"r{i}", "priority": 100 + i, "direction": direction, "access": access, "protocol": proto,
        **src, **dst, **sport, **dport},
    st.integers(0, 3000), st.sampled_from(["Inbound", "Outbound"]), st.sampled_from(["Allow", "Deny"]),
    st.sampled_from(["Tcp", "Udp", "Icmp", "*", "Esp"]), _prefixes("source"), _prefixes("destination"),
    _ports("source"), _ports("destination"))
probe_ips = st.sampled_from(["10.1.2.3", "10.1.2.4", "10.1.9.9", "10.9.9.9", "192.168.1.1", "203.0.113.10",
                             "168.63.129.16", "8.8.8.8", "100.64.0.1"])
probe_ports = st.sampled_from([22, 53, 80, 85, 443, 1023, 1500, 8080, 33000, 61000, 65535])


def _wire(rule: dict) -> dict:
    """The rule as the lab file gives it: the plural form when there is one, else the singular."""
    out = dict(rule)
    for key in ("source_address", "destination_address"):
        if f"{key}_prefixes" in out:
            del out[f"{key}_prefix"]
    for key in ("source_port", "destination_port"):
        if f"{key}_ranges" in out:
            del out[f"{key}_range"]
    return out


@settings(max_examples=400, deadline=None)
@given(st.lists(rules, max_size=25, unique_by=lambda r: (r["priority"], r["direction"])),
       st.sampled_from(["Inbound", "Outbound"]), st.sampled_from(["Tcp", "Udp", "Icmp"]), probe_ips, probe_ips,
       probe_ports, probe_ports)
# ICMP has no source port either: a rule for client ports does not match a ping
@example([{"name": "r1", "priority": 100, "direction": "Inbound", "access": "Deny", "protocol": "*",
           "source_address_prefix": "*", "destination_address_prefix": "*", "source_port_range": "1024-65535",
           "destination_port_range": "*"}], "Inbound", "Icmp", "10.1.2.3", "10.1.2.4", 80, 80)
# a list with 0-65535 covers every port: ICMP matches it
@example([{"name": "r1", "priority": 100, "direction": "Inbound", "access": "Deny", "protocol": "Icmp",
           "source_address_prefix": "*", "destination_address_prefix": "*", "source_port_range": "*",
           "destination_port_range": "22", "destination_port_ranges": ["22", "0-65535"]}],
         "Inbound", "Icmp", "10.1.2.3", "10.1.2.4", 80, 80)
def test_indexed_nsg_agrees_with_the_docs(rule_list, direction, protocol, src, dst, sport, dport):
    topo = Topology.model_validate({
        "name": "p", "virtual_networks": [{"name": "v", "address_space": [str(n) for n in VNET_SPACE],
                                           "subnets": [{"name": "s", "address_prefix": "10.1.0.0/24"}]}],
        "network_security_groups": [{"name": "n", "security_rules": [_wire(r) for r in rule_list]}]})
    compiled = LabView(topo).nsg("n", direction, topo.virtual_networks[0])
    sport, dport = (None, None) if protocol == "Icmp" else (sport, dport)
    got = compiled.evaluate(protocol, IPv4Address(src), IPv4Address(dst), dport, sport).rule
    assert got.name == first_match(rule_list, direction, protocol, src, dst, sport, dport)


def test_port_lists_covering_every_port_are_every_port():
    """'22' and '0-65535' together are every port: an ICMP flow matches such a rule (hypothesis
    found the engine treating the list as port-restricted)."""
    from vnetlab.engine.security import FULL_PORTS, parse_ports
    assert parse_ports(["22", "0-65535"]) == FULL_PORTS
    assert parse_ports(["80", "22,443", "81-90"]) == ((22, 22), (80, 90), (443, 443))
