"""Property tests: the indexed longest-prefix lookup and the indexed NSG evaluation agree with
naive readings of the docs on random inputs."""

from ipaddress import IPv4Address, IPv4Network

from hypothesis import given, settings
from hypothesis import strategies as st

from vnetlab.engine.routing import EffectiveRoute, RouteLookup
from vnetlab.engine.security import AddressSet, CompiledNsg, evaluate_naive
from vnetlab.model import NetworkSecurityGroup

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
        assert lookup.lookup(ip) == expected


small_nets = st.sampled_from(["*", "10.0.0.0/8", "10.1.0.0/16", "10.1.2.0/24", "10.1.2.3/32", "192.168.0.0/16",
                              "VirtualNetwork", "Internet", "AzureLoadBalancer", "203.0.113.0/24"])
port_specs = st.sampled_from(["*", "22", "80", "443", "1000-2000", "80-90", "53"])
rules = st.builds(
    lambda i, direction, access, proto, src, dst, dport, sport: {
        "name": f"r{i}", "priority": 100 + i, "direction": direction, "access": access, "protocol": proto,
        "source_address_prefix": src, "destination_address_prefix": dst, "destination_port_range": dport,
        "source_port_range": sport},
    st.integers(0, 3000), st.sampled_from(["Inbound", "Outbound"]), st.sampled_from(["Allow", "Deny"]),
    st.sampled_from(["Tcp", "Udp", "Icmp", "*"]), small_nets, small_nets, port_specs,
    st.sampled_from(["*", "*", "*", "1024-65535", "53"]))
probe_ips = st.sampled_from(["10.1.2.3", "10.1.2.4", "10.1.9.9", "10.9.9.9", "192.168.1.1", "203.0.113.10",
                             "168.63.129.16", "8.8.8.8"])


@settings(max_examples=300, deadline=None)
@given(st.lists(rules, max_size=25, unique_by=lambda r: (r["priority"], r["direction"])),
       st.sampled_from(["Inbound", "Outbound"]), st.sampled_from(["Tcp", "Udp", "Icmp"]), probe_ips, probe_ips,
       st.sampled_from([22, 53, 80, 85, 443, 1500, 8080]))
def test_indexed_nsg_agrees_with_a_scan_in_priority_order(rule_list, direction, protocol, src, dst, port):
    nsg = NetworkSecurityGroup(name="n", security_rules=rule_list)
    vnet_set = AddressSet(nets=((int(IPv4Address("10.1.0.0")), int(IPv4Address("255.255.0.0"))),))
    compiled = CompiledNsg(nsg, direction, vnet_set)
    port_or_none = None if protocol == "Icmp" else port
    got = compiled.evaluate(protocol, IPv4Address(src), IPv4Address(dst), port_or_none).rule
    want = evaluate_naive(nsg, direction, vnet_set, protocol, int(IPv4Address(src)), int(IPv4Address(dst)),
                          port_or_none)
    assert got.name == want.name
