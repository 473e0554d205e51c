"""Unit tests per engine module: addressing, routing, security, app_service."""
import copy
import json
from ipaddress import IPv4Address, IPv4Network

import pytest

from conftest import NOTE, build

from vnetlab.engine import addressing, routing
from vnetlab.engine.app_service import VNET_MTU, sandbox, vnet_interface_name
from vnetlab.engine.network import LabView
from vnetlab.engine.security import CompiledNsg, address_set, parse_ports, virtual_network_tag
from vnetlab.model import NetworkSecurityGroup


# -- addressing ---------------------------------------------------------------------------------
def test_reserved_addresses_are_first_four_and_last():
    net = IPv4Network("10.0.0.0/26")
    assert {str(a) for a in addressing.reserved(net)} == {"10.0.0.0", "10.0.0.1", "10.0.0.2", "10.0.0.3",
                                                          "10.0.0.63"}
    assert addressing.usable_count(IPv4Network("10.0.0.0/28")) == 11  # the GetVirtualNetworkIntegrations example
    assert addressing.usable_count(IPv4Network("10.0.0.0/26")) == 59


def test_dynamic_vm_address_is_lowest_free_from_dot_four():
    net = IPv4Network("10.0.0.0/26")
    assert addressing.lowest_free(net, set()) == IPv4Address("10.0.0.4")
    assert addressing.lowest_free(net, {IPv4Address("10.0.0.4")}) == IPv4Address("10.0.0.5")


def test_many_dynamic_nics_take_the_lowest_free_addresses_around_static_ones():
    vms = [{"name": f"vm{i}", "subnet": "v/s"} for i in range(6)]
    vms[2] = {"name": "vm2", "subnet": "v/s", "private_ip_address": "10.0.0.6"}
    vms.append({"name": "other", "subnet": "v/t"})
    doc = {"name": "lab", "virtual_networks": [{"name": "v", "address_space": ["10.0.0.0/16"], "subnets": [
        {"name": "s", "address_prefix": "10.0.0.0/28"}, {"name": "t", "address_prefix": "10.0.1.0/28"}]}],
        "virtual_machines": vms}
    topo = build(doc)
    got = {vm.name: topo.find("network_interfaces", vm.network_interface).private_ip_address
           for vm in topo.virtual_machines}
    assert got == {"vm0": "10.0.0.4", "vm1": "10.0.0.5", "vm2": "10.0.0.6", "vm3": "10.0.0.7", "vm4": "10.0.0.8",
                   "vm5": "10.0.0.9", "other": "10.0.1.4"}


def test_integration_addresses_come_from_the_top_of_the_subnet():
    topo = build()
    assert addressing.integration_addresses(topo)[("plan1", "vnet1/integration")] == [IPv4Address("10.0.0.190")]
    # the second public report: 10.0.0.126 is the last usable address of 10.0.0.64/26
    assert addressing.top_down(IPv4Network("10.0.0.64/26"), 1) == [IPv4Address("10.0.0.126")]
    doc = {**copy.deepcopy(NOTE), "app_service_plans": [{"name": "plan1", "sku": "P1v3", "instances": 3}]}
    ips = addressing.integration_addresses(build(doc))[("plan1", "vnet1/integration")]
    assert [str(i) for i in ips] == ["10.0.0.190", "10.0.0.189", "10.0.0.188"]


# -- routing ---------------------------------------------------------------------------------------
def _routes(topo, ref="vnet1/default"):
    vnet, sn = topo.subnet(ref)
    return routing.effective_routes(topo, vnet, sn)


def test_system_routes_of_a_vnet_inside_10_8():
    got = {(r.address_prefix, r.next_hop_type, r.state) for r in _routes(build())}
    assert ("10.0.0.0/24", "VnetLocal", "Active") in got
    assert ("0.0.0.0/0", "Internet", "Active") in got
    for p in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"):
        assert (p, "None", "Active") in got


def test_reserved_none_route_removed_when_vnet_contains_it():
    doc = {**copy.deepcopy(NOTE), "virtual_networks": [{"name": "vnet1", "address_space": ["10.0.0.0/8"], "subnets": [
        {"name": "default", "address_prefix": "10.0.0.0/26"}]}], "web_apps": []}
    prefixes = {(r.address_prefix, r.next_hop_type) for r in _routes(build(doc))}
    assert ("10.0.0.0/8", "None") not in prefixes and ("10.0.0.0/8", "VnetLocal") in prefixes


def test_user_route_beats_system_route_of_equal_prefix_and_marks_it_invalid():
    doc = {**copy.deepcopy(NOTE), "route_tables": [{"name": "rt", "routes": [
        {"name": "r", "address_prefix": "0.0.0.0/0", "next_hop_type": "None"}]}]}
    doc["virtual_networks"][0]["subnets"][0]["route_table"] = "rt"
    routes = _routes(build(doc))
    states = {(r.source, r.address_prefix): r.state for r in routes}
    assert states[("User", "0.0.0.0/0")] == "Active" and states[("Default", "0.0.0.0/0")] == "Invalid"
    lookup = routing.RouteLookup(routes)
    assert lookup.route_for(IPv4Address("203.0.113.10")).next_hop_type == "None"
    assert lookup.route_for(IPv4Address("10.0.0.4")).next_hop_type == "VnetLocal"


def test_peering_routes_need_both_directions():
    doc = {**copy.deepcopy(NOTE), "virtual_networks": NOTE["virtual_networks"] + [
        {"name": "hub", "address_space": ["10.1.0.0/24"], "subnets": [{"name": "s", "address_prefix": "10.1.0.0/27"}]}]}
    doc["virtual_networks"] = [dict(v) for v in doc["virtual_networks"]]
    doc["virtual_networks"][0]["peerings"] = [{"name": "to-hub", "remote_virtual_network": "hub"}]
    one_way = build(doc)
    assert not any(r.next_hop_type == "VNetPeering" for r in _routes(one_way))
    assert routing.peering_state(one_way, one_way.vnet("vnet1"), one_way.vnet("vnet1").peerings[0]) == "Initiated"
    doc["virtual_networks"][1]["peerings"] = [{"name": "to-vnet1", "remote_virtual_network": "vnet1"}]
    both = build(doc)
    assert ("10.1.0.0/24", "VNetPeering") in {(r.address_prefix, r.next_hop_type) for r in _routes(both)}


# -- security -----------------------------------------------------------------------------------------
def test_port_ranges_and_lists():
    assert parse_ports(["*"]) == ((0, 65535),)
    assert parse_ports(["80", "1000-2000"]) == ((80, 80), (1000, 2000))
    assert parse_ports(["22,443"]) == ((22, 22), (443, 443))


def test_lists_of_port_numbers_read_as_the_general_reader_reads_them():
    from vnetlab.engine.security import RuleError, _parse_ports
    for values in (["80"], ["0080"], ["443", "80", "81"], ["80", "80"], ["0"], ["65535"], ["65536"], ["99999"],
                   ["000080"], [" 80"], ["80", "x"], []):
        try:
            expected = _parse_ports(tuple(values))
        except RuleError:
            with pytest.raises(RuleError):
                parse_ports(values)
            continue
        assert parse_ports(values) == expected, values


def test_service_tags_resolve_in_the_vnet_context():
    topo = build()
    tag = virtual_network_tag(topo, topo.vnet("vnet1"))
    vnet_set = address_set(["VirtualNetwork"], tag)
    assert vnet_set.contains(int(IPv4Address("10.0.0.77")), tag)
    assert vnet_set.contains(int(IPv4Address("168.63.129.16")), tag)
    assert not vnet_set.contains(int(IPv4Address("10.9.0.1")), tag)
    internet = address_set(["Internet"], tag)
    assert internet.contains(int(IPv4Address("203.0.113.10")), tag)
    assert not internet.contains(int(IPv4Address("10.9.0.1")), tag)


def test_nsg_first_match_by_priority_then_defaults():
    topo = build()
    nsg = NetworkSecurityGroup(name="n", security_rules=[
        {"name": "deny-80", "priority": 200, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
         "destination_port_range": "80"},
        {"name": "allow-80-from-app", "priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
         "source_address_prefix": "10.0.0.128/26", "destination_port_range": "80"}])
    c = CompiledNsg(nsg, "Inbound", virtual_network_tag(topo, topo.vnet("vnet1")))
    ip = lambda s: IPv4Address(s)  # noqa: E731
    assert c.evaluate("Tcp", ip("10.0.0.190"), ip("10.0.0.4"), 80).rule.name == "allow-80-from-app"
    assert c.evaluate("Tcp", ip("10.0.0.5"), ip("10.0.0.4"), 80).rule.name == "deny-80"
    assert c.evaluate("Tcp", ip("10.0.0.5"), ip("10.0.0.4"), 22).rule.name == "AllowVNetInBound"
    assert c.evaluate("Tcp", ip("203.0.113.10"), ip("10.0.0.4"), 22).rule.name == "DenyAllInbound"
    assert c.evaluate("Icmp", ip("10.0.0.5"), ip("10.0.0.4"), None).rule.name == "AllowVNetInBound"


# -- app service ------------------------------------------------------------------------------------------
def test_sandbox_before_integration():
    doc = {**copy.deepcopy(NOTE), "web_apps": [{"name": "app1", "plan": "plan1"}]}
    sb = sandbox(build(doc), build(doc).web_apps[0])
    assert not sb.integrated
    assert [(r.destination, r.gateway, r.iface) for r in sb.routes] == [("0.0.0.0/0", "172.16.2.1", "eth0"),
                                                                         ("172.16.2.0/24", None, "eth0")]


def test_sandbox_after_integration_is_the_notes_table():
    topo = build()
    sb = LabView(topo).sandbox(topo.web_apps[0])
    assert sb.vnet_iface.startswith("vnet") and len(sb.vnet_iface) == 13
    assert sb.vnet_iface == vnet_interface_name(topo.id_of("web_apps", topo.web_apps[0]))
    assert [i.mtu for i in sb.interfaces if i.name == sb.vnet_iface] == [VNET_MTU]
    rows = [line.split()[:4] + [line.split()[7]] for line in sb.route_n().splitlines()[2:]]
    v = sb.vnet_iface
    assert rows == [
        ["0.0.0.0", "169.254.129.1", "0.0.0.0", "UG", "eth0"],
        ["10.0.0.0", "169.254.254.1", "255.255.255.0", "UG", v],
        ["10.0.0.0", "169.254.254.1", "255.0.0.0", "UG", v],
        ["169.254.129.0", "0.0.0.0", "255.255.255.0", "U", "eth0"],
        ["169.254.254.0", "0.0.0.0", "255.255.255.0", "U", v],
        ["172.16.0.0", "169.254.254.1", "255.240.0.0", "UG", v],
        ["192.168.0.0", "169.254.254.1", "255.255.0.0", "UG", v]]
    assert sb.integration_ip == IPv4Address("10.0.0.190")


def test_route_all_moves_the_default_route():
    doc = {**copy.deepcopy(NOTE), "web_apps": [{"name": "app1", "plan": "plan1", "vnet_integration": "vnet1/integration",
                                 "app_settings": {"WEBSITE_VNET_ROUTE_ALL": "1"}}]}
    topo = build(doc)
    sb = LabView(topo).sandbox(topo.web_apps[0])
    default = next(r for r in sb.routes if r.destination == "0.0.0.0/0")
    assert (default.gateway, default.iface) == ("169.254.254.1", sb.vnet_iface)


def test_tag_map_expands_service_tags_in_the_vnet_context():
    from ipaddress import collapse_addresses

    from vnetlab.engine.security import tag_map
    topo = build()
    tags = tag_map(virtual_network_tag(topo, topo.vnet("vnet1")))
    assert tags["VirtualNetwork"] == ["10.0.0.0/24", "168.63.129.16/32"]
    internet = [IPv4Network(p) for p in tags["Internet"]]
    assert any(IPv4Address("203.0.113.10") in n for n in internet)
    assert not any(IPv4Address("10.0.0.4") in n or IPv4Address("192.168.1.1") in n for n in internet)
    assert not any(IPv4Address("168.63.129.16") in n for n in internet)
    assert list(collapse_addresses(internet)) == internet


def test_an_nsgs_port_cover_says_whether_some_rule_may_match_a_flow():
    """The cover the store keeps beside each NSG's rules answers, for any flow, what asking every rule
    (``may_match``) answers: random rules of every protocol and port form, every kind of flow."""
    import random

    from vnetlab.engine.security import cover_may_match, may_match, port_cover
    from vnetlab.model import SecurityRule
    rng = random.Random(8)
    port_forms = [lambda: "*", lambda: str(rng.choice([22, 80, 443, 53, 8080])),
                  lambda: f"{rng.choice([20, 79, 440])}-{rng.choice([444, 9000])}", lambda: "0-65535"]
    flows = [("Tcp", 80), ("Tcp", 22), ("Tcp", 8081), ("Udp", 53), ("Udp", 80), ("Icmp", None), ("Esp", 0)]
    seen: set[tuple[str, bool]] = set()
    for _ in range(400):
        rules = []
        for k in range(rng.randint(0, 4)):
            ports = {"destination_port_range": rng.choice(port_forms)()} if rng.random() < 0.6 else \
                {"destination_port_ranges": [rng.choice(port_forms)() for _ in range(rng.randint(1, 3))]}
            rules.append(SecurityRule(name=f"r{k}", priority=100 + k, protocol=rng.choice(["Tcp", "Udp", "Icmp", "*", "Esp"]),
                                      source_port_range=rng.choice(["*", "*", "1024-65535"]), **ports))
        cover = json.loads(json.dumps(port_cover(rules)))  # as the store keeps it
        for protocol, port in flows:
            expected = any(may_match(rule, protocol, port) for rule in rules)
            assert cover_may_match(cover, protocol, port) == expected, (rules, protocol, port)
            seen.add((protocol, expected))
    assert seen == {(protocol, outcome) for protocol, _ in flows for outcome in (True, False)}
