"""Scenario tests: each behaviour of the trace engine on a small lab."""

import copy

import pytest
from conftest import NOTE, build

from vnetlab.engine.network import LabView
from vnetlab.engine.trace import trace
from vnetlab.engine.security import PLATFORM_TAGS


def run(topo, src, dst, port=80, proto="Tcp"):
    return trace(LabView(topo), src, dst, port if proto != "Icmp" else None, proto)


def vm_ip(topo, name):
    return topo.find("network_interfaces", topo.find("virtual_machines", name).network_interface).private_ip_address


def with_(**changes):
    doc = copy.deepcopy(NOTE)
    doc.update(copy.deepcopy(changes))
    return doc


# -- the note --------------------------------------------------------------------------------------
def test_note_before_integration_ping_times_out_as_a_private_address_on_the_internet():
    topo = build(with_(web_apps=[{"name": "app1", "plan": "plan1"}]))
    t = run(topo, "app1", "10.0.0.4", proto="Icmp")
    assert (t.verdict, t.reason) == ("TimedOut", "PrivateAddressOnInternet")
    assert t.steps[0].detail.iface == "eth0"


def test_an_integrated_app_sends_to_the_internet_from_eth0_not_from_the_vnet_interface():
    topo = build()  # no Route All: the default route stays on eth0 (169.254.129.2)
    t = run(topo, "app1", "203.0.113.10", 443)
    route, snat = t.steps[0].detail, t.steps[1].detail
    assert route.iface == "eth0" and t.flow.source_ip == "169.254.129.2"
    assert (snat.from_, snat.to) == ("169.254.129.2", str(LabView(topo).sandbox(topo.web_apps[0]).outbound_ip))


def test_note_after_integration_connects_with_the_integration_address_as_source():
    topo = build()
    net = LabView(topo)
    integration_ip = str(net.sandbox(topo.web_apps[0]).integration_ip)
    for proto in ("Icmp", "Tcp"):
        t = run(topo, "app1", "rg1vm1", proto=proto)
        assert t.verdict == "Connected" and t.source_ip_seen == integration_ip
        snat = next(s for s in t.steps if s.kind == "SNAT")
        assert snat.detail.to == integration_ip
    assert run(topo, "app1", "rg1vm1", port=81).verdict == "Refused"


@pytest.mark.parametrize("port", [80, 443])
def test_reverse_connection_to_the_integration_address_is_refused(port):
    topo = build()
    ip = str(LabView(topo).sandbox(topo.web_apps[0]).integration_ip)
    t = run(topo, "rg1vm1", ip, port)
    assert (t.verdict, t.reason) == ("Refused", "IntegrationInboundRefused")
    assert run(topo, "rg1vm1", ip, proto="Icmp").verdict == "TimedOut"


def test_integration_subnet_inbound_nsg_never_applies_to_the_app():
    doc = with_(network_security_groups=[{"name": "nsg-int", "security_rules": [
        {"name": "deny-all-in", "priority": 100, "direction": "Inbound", "access": "Deny"}]}])
    doc["virtual_networks"][0]["subnets"][1]["network_security_group"] = "nsg-int"
    topo = build(doc)
    assert run(topo, "app1", "rg1vm1").verdict == "Connected"


# -- route all --------------------------------------------------------------------------------------------
def _internet_doc(route_all: bool, deny_internet: bool):
    doc = with_(web_apps=[{"name": "app1", "plan": "plan1", "vnet_integration": "vnet1/integration",
                           "vnet_route_all_enabled": route_all}])
    if deny_internet:
        doc["network_security_groups"] = [{"name": "nsg-int", "security_rules": [
            {"name": "deny-internet", "priority": 100, "direction": "Outbound", "access": "Deny",
             "destination_address_prefix": "Internet"}]}]
        doc["virtual_networks"][0]["subnets"][1]["network_security_group"] = "nsg-int"
    return doc


def test_route_all_off_internet_leaves_directly_from_the_app():
    topo = build(_internet_doc(False, True))
    t = run(topo, "app1", "203.0.113.10", 443)
    net = LabView(topo)
    assert t.verdict == "Connected" and t.source_ip_seen == str(net.sandbox(topo.web_apps[0]).outbound_ip)
    assert not any(s.kind == "NetworkSecurityGroup" for s in t.steps)


def test_route_all_on_sends_internet_traffic_through_the_integration_subnet_nsg():
    t = run(build(_internet_doc(True, True)), "app1", "203.0.113.10", 443)
    assert (t.verdict, t.reason) == ("TimedOut", "NsgDenied")
    assert [s.detail.rule for s in t.steps if s.kind == "NetworkSecurityGroup"] == ["deny-internet"]
    t = run(build(_internet_doc(True, False)), "app1", "203.0.113.10", 443)
    assert t.verdict == "Connected"
    assert any(s.kind == "Route" and s.detail.next_hop_type == "Internet" for s in t.steps)


def test_route_all_off_non_rfc1918_vnet_destination_still_goes_through_the_vnet():
    doc = with_()
    doc["virtual_networks"][0]["address_space"] = ["10.0.0.0/24", "40.1.0.0/24"]
    doc["virtual_networks"][0]["subnets"].append({"name": "pub", "address_prefix": "40.1.0.0/26"})
    doc["virtual_machines"].append({"name": "vmpub", "subnet": "vnet1/pub", "services": [{"port": 80}]})
    topo = build(doc)
    t = run(topo, "app1", "vmpub")
    assert t.verdict == "Connected" and t.steps[0].detail.iface.startswith("vnet")


# -- NSGs ------------------------------------------------------------------------------------------------------
def test_nsg_deny_outbound_on_the_integration_subnet():
    doc = with_(network_security_groups=[{"name": "nsg-int", "security_rules": [
        {"name": "deny-vm-80", "priority": 100, "direction": "Outbound", "access": "Deny", "protocol": "Tcp",
         "destination_address_prefix": "10.0.0.4", "destination_port_range": "80"}]}])
    doc["virtual_networks"][0]["subnets"][1]["network_security_group"] = "nsg-int"
    topo = build(doc)
    t = run(topo, "app1", "rg1vm1")
    assert (t.verdict, t.reason) == ("TimedOut", "NsgDenied") and t.source_ip_seen is None
    assert run(topo, "app1", "rg1vm1", proto="Icmp").verdict == "Connected"


@pytest.mark.parametrize("where", ["subnet", "nic"])
def test_nsg_deny_inbound_on_the_vm_subnet_or_nic(where):
    doc = with_(network_security_groups=[{"name": "nsg-vm", "security_rules": [
        {"name": "deny-https", "priority": 100, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
         "destination_port_range": "443"}]}])
    doc["virtual_machines"][0]["services"] = [{"port": 80}, {"port": 443}]
    if where == "subnet":
        doc["virtual_networks"][0]["subnets"][0]["network_security_group"] = "nsg-vm"
    else:
        doc["virtual_machines"][0]["network_security_group"] = "nsg-vm"
    topo = build(doc)
    denied = run(topo, "app1", "rg1vm1", 443)
    assert (denied.verdict, denied.reason) == ("TimedOut", "NsgDenied")
    step = next(s for s in denied.steps if s.kind == "NetworkSecurityGroup" and s.dropped)
    assert step.detail.attached_to.startswith("subnet" if where == "subnet" else "network interface")
    assert run(topo, "app1", "rg1vm1", 80).verdict == "Connected"


def test_outbound_nic_nsg_is_evaluated_before_subnet_nsg():
    doc = with_(network_security_groups=[
        {"name": "nic-nsg", "security_rules": [{"name": "nic-allow", "priority": 100, "direction": "Outbound",
                                                "access": "Allow"}]},
        {"name": "sub-nsg", "security_rules": [{"name": "sub-deny", "priority": 100, "direction": "Outbound",
                                                "access": "Deny", "destination_address_prefix": "203.0.113.0/24"}]}])
    doc["virtual_machines"][0]["network_security_group"] = "nic-nsg"
    doc["virtual_networks"][0]["subnets"][0]["network_security_group"] = "sub-nsg"
    t = run(build(doc), "rg1vm1", "203.0.113.10", 443)
    assert [s.detail.rule for s in t.steps if s.kind == "NetworkSecurityGroup"] == ["nic-allow", "sub-deny"]
    assert t.reason == "NsgDenied"


# -- UDRs -----------------------------------------------------------------------------------------------------
def _hub_doc(forwarding: bool, udr_hop: str = "VirtualAppliance"):
    doc = with_()
    doc["virtual_networks"][0]["peerings"] = [{"name": "to-hub", "remote_virtual_network": "hub",
                                               "allow_forwarded_traffic": True}]
    doc["virtual_networks"].append({"name": "hub", "address_space": ["10.1.0.0/24"],
                                    "subnets": [{"name": "nva", "address_prefix": "10.1.0.0/27"}],
                                    "peerings": [{"name": "to-vnet1", "remote_virtual_network": "vnet1"},
                                                 {"name": "to-spoke", "remote_virtual_network": "spoke",
                                                  "allow_forwarded_traffic": True}]})
    doc["virtual_networks"].append({"name": "spoke", "address_space": ["10.2.0.0/24"],
                                    "subnets": [{"name": "s", "address_prefix": "10.2.0.0/27"}],
                                    "peerings": [{"name": "to-hub", "remote_virtual_network": "hub",
                                                  "allow_forwarded_traffic": True}]})
    doc["virtual_machines"] += [{"name": "nva1", "subnet": "hub/nva", "private_ip_address": "10.1.0.4",
                                 "enable_ip_forwarding": forwarding},
                                {"name": "vm2", "subnet": "spoke/s", "services": [{"port": 80}]}]
    route = {"name": "to-spoke", "address_prefix": "10.2.0.0/24", "next_hop_type": udr_hop}
    if udr_hop == "VirtualAppliance":
        route["next_hop_ip_address"] = "10.1.0.4"
    back = {**route, "name": "to-vnet1", "address_prefix": "10.0.0.0/24"}
    doc["route_tables"] = [{"name": "rt", "routes": [route]}, {"name": "rt-back", "routes": [back]}]
    doc["virtual_networks"][0]["subnets"][0]["route_table"] = "rt"
    doc["virtual_networks"][0]["subnets"][1]["route_table"] = "rt"
    doc["virtual_networks"][2]["subnets"][0]["route_table"] = "rt-back"
    return doc


def test_peering_is_not_transitive():
    doc = _hub_doc(True)
    for vnet in doc["virtual_networks"]:
        for sn in vnet["subnets"]:
            sn.pop("route_table", None)
    topo = build(doc)
    t = run(topo, "rg1vm1", "vm2")
    assert (t.verdict, t.reason) == ("TimedOut", "RouteNone")
    assert t.steps[-1].detail.address_prefix == "10.0.0.0/8"
    assert run(topo, "rg1vm1", "nva1", proto="Icmp").verdict == "Connected"


def test_udr_to_an_nva_works_only_with_ip_forwarding():
    ok = run(build(_hub_doc(True)), "rg1vm1", "vm2")
    assert ok.verdict == "Connected", ok.to_dict()
    assert any(s.kind == "VirtualAppliance" and s.action == "Forwarded" for s in ok.steps)
    blocked = run(build(_hub_doc(False)), "rg1vm1", "vm2")
    assert (blocked.verdict, blocked.reason) == ("TimedOut", "NextHopNotForwarding")


def test_udr_none_drops():
    t = run(build(_hub_doc(True, "None")), "app1", "10.2.0.4")
    assert (t.verdict, t.reason) == ("TimedOut", "RouteNone")
    assert t.steps[-1].detail.source == "User"


def test_forwarded_traffic_needs_allow_forwarded_traffic_on_the_receiving_peering():
    doc = _hub_doc(True)
    doc["virtual_networks"][2]["peerings"][0]["allow_forwarded_traffic"] = False
    t = run(build(doc), "rg1vm1", "vm2")
    assert (t.verdict, t.reason) == ("TimedOut", "ForwardedTrafficNotAllowed")


def test_return_path_is_checked():
    doc = _hub_doc(True)
    # vm2's subnet sends replies for vnet1 to a None route: the SYN arrives, the SYN-ACK is dropped
    doc["route_tables"][1]["routes"][0] = {"name": "drop", "address_prefix": "10.0.0.0/24", "next_hop_type": "None"}
    t = run(build(doc), "rg1vm1", "vm2")
    assert (t.verdict, t.reason) == ("TimedOut", "ReturnPathDropped")
    assert t.return_path[-1].dropped


def test_no_host_and_no_listener():
    topo = build()
    assert run(topo, "rg1vm1", "10.0.0.9").reason == "NoHostAtDestination"
    assert run(topo, "app1", "rg1vm1", 22).reason == "NoListener"
    assert run(topo, "rg1vm1", "203.0.113.99").reason == "NoHostAtDestination"


def test_reply_routed_to_the_appliance_that_is_its_destination_is_delivered():
    doc = _hub_doc(False)
    # vnet1 sends hub traffic via the NVA (no forwarding); the NVA pings rg1vm1, whose reply is for the NVA itself
    doc["route_tables"][0]["routes"].append({"name": "hub-via-nva", "address_prefix": "10.1.0.0/24",
                                             "next_hop_type": "VirtualAppliance", "next_hop_ip_address": "10.1.0.4"})
    t = run(build(doc), "nva1", "rg1vm1", proto="Icmp")
    assert t.verdict == "Connected", t.to_dict()
    assert t.return_path[-1].detail.next_hop_ip == "10.1.0.4"


def test_packet_for_an_appliance_in_a_peer_still_crosses_the_peering():
    doc = _hub_doc(True)
    doc["route_tables"][0]["routes"].append({"name": "hub-via-nva", "address_prefix": "10.1.0.0/24",
                                             "next_hop_type": "VirtualAppliance", "next_hop_ip_address": "10.1.0.4"})
    assert run(build(doc), "rg1vm1", "10.1.0.4", proto="Icmp").verdict == "Connected"
    doc["virtual_networks"][0]["peerings"][0]["allow_virtual_network_access"] = False
    t = run(build(doc), "rg1vm1", "10.1.0.4", proto="Icmp")
    assert (t.verdict, t.reason) == ("TimedOut", "PeeringAccessDisabled")


# -- service tags ---------------------------------------------------------------------------------------------
def _hub_and_spokes_doc():
    """Two spokes peered with a hub (not with each other), each spoke subnet with the default NSG rules only
    and a 0.0.0.0/0 UDR to the hub's NVA."""
    doc = {"name": "hs", "virtual_networks": [
        {"name": "hub", "address_space": ["10.0.0.0/24"], "subnets": [{"name": "nva", "address_prefix": "10.0.0.0/27"}],
         "peerings": [{"name": "to-s1", "remote_virtual_network": "spoke1", "allow_forwarded_traffic": True},
                      {"name": "to-s2", "remote_virtual_network": "spoke2", "allow_forwarded_traffic": True}]},
        *({"name": f"spoke{i}", "address_space": [f"10.{i}.0.0/24"],
           "subnets": [{"name": "s", "address_prefix": f"10.{i}.0.0/27", "network_security_group": "nsg-default",
                        "route_table": "to-nva"}],
           "peerings": [{"name": "to-hub", "remote_virtual_network": "hub", "allow_forwarded_traffic": True}]}
          for i in (1, 2))],
        "network_security_groups": [{"name": "nsg-default"}],
        "route_tables": [{"name": "to-nva", "routes": [{"name": "default", "address_prefix": "0.0.0.0/0",
                                                        "next_hop_type": "VirtualAppliance",
                                                        "next_hop_ip_address": "10.0.0.4"}]}],
        "virtual_machines": [{"name": "nva", "subnet": "hub/nva", "private_ip_address": "10.0.0.4",
                              "enable_ip_forwarding": True},
                             {"name": "vm1", "subnet": "spoke1/s", "services": [{"port": 80}]},
                             {"name": "vm2", "subnet": "spoke2/s", "services": [{"port": 80}]}]}
    return doc


def test_virtual_network_tag_includes_udr_prefixes_so_spoke_to_spoke_through_an_nva_is_allowed():
    # VirtualNetwork: "... and address prefixes used on user-defined routes"; a 0.0.0.0/0 UDR makes it match all
    # https://learn.microsoft.com/azure/virtual-network/service-tags-overview#available-service-tags
    topo = build(_hub_and_spokes_doc())
    t = run(topo, "vm1", "vm2")
    assert t.verdict == "Connected", t.to_dict()
    rules = [s.detail.rule for s in t.steps if s.kind == "NetworkSecurityGroup"]
    assert rules == ["AllowVnetOutBound", "AllowVNetInBound"]
    assert any(s.kind == "VirtualAppliance" and s.action == "Forwarded" for s in t.steps)
    # the user 0.0.0.0/0 route to the appliance leaves the private ranges' None routes Invalid
    states = {(r.address_prefix, r.next_hop_type): r.state for r in LabView(topo).subnet_view("spoke1/s").routes}
    assert states[("10.0.0.0/8", "None")] == "Invalid" and states[("0.0.0.0/0", "VirtualAppliance")] == "Active"
    from vnetlab.engine.security import tag_map
    assert "0.0.0.0/0" in tag_map(LabView(topo).vnet_tag(topo.vnet("spoke1")))["VirtualNetwork"]


def test_a_udr_prefix_does_not_shrink_the_internet_tag():
    doc = _hub_and_spokes_doc()
    doc["network_security_groups"][0]["security_rules"] = [
        {"name": "deny-internet", "priority": 100, "direction": "Outbound", "access": "Deny",
         "destination_address_prefix": "Internet"}]
    topo = build(doc)
    t = run(topo, "vm1", "203.0.113.10", 443)
    assert (t.verdict, t.reason) == ("TimedOut", "NsgDenied")
    assert run(topo, "vm1", "vm2").verdict == "Connected"


def _storage_doc(destination: str):
    doc = with_(network_security_groups=[{"name": "nsg-vm", "security_rules": [
        {"name": "deny-storage", "priority": 100, "direction": "Outbound", "access": "Deny",
         "destination_address_prefix": destination}]}],
        internet_hosts=[{"name": "storage", "ip": str(PLATFORM_TAGS["Storage"][0][2])}, {"name": "public-test", "ip": "203.0.113.10"}])
    doc["virtual_networks"][0]["subnets"][0]["network_security_group"] = "nsg-vm"
    return doc


@pytest.mark.parametrize("tag", ["Storage", "storage", "Storage.westeurope", "AzureCloud"])
def test_a_platform_service_tag_matches_its_documentation_range(tag):
    topo = build(_storage_doc(tag))
    t = run(topo, "rg1vm1", "storage", 443)
    assert (t.verdict, t.reason) == ("TimedOut", "NsgDenied")
    assert run(topo, "rg1vm1", "public-test", 443).verdict == "Connected"


def test_another_service_tag_does_not_match_storage_addresses():
    t = run(build(_storage_doc("Sql")), "rg1vm1", "storage", 443)
    assert t.verdict == "Connected"


# -- the appliance's two forwarding settings ---------------------------------------------------------------
@pytest.mark.parametrize("nic,guest,reason", [(True, False, "GuestNotForwarding"), (False, True, "NextHopNotForwarding"),
                                              (False, False, "NextHopNotForwarding")])
def test_the_trace_says_which_forwarding_setting_is_missing(nic, guest, reason):
    doc = _hub_doc(nic)
    doc["virtual_machines"][1]["guest_ip_forwarding"] = guest
    t = run(build(doc), "rg1vm1", "vm2")
    assert (t.verdict, t.reason) == ("TimedOut", reason)
    step = next(s for s in t.steps if s.kind == "VirtualAppliance")
    assert (step.dropped, step.detail.enable_ip_forwarding, step.detail.guest_ip_forwarding) == (True, nic, guest)


def test_an_unset_guest_setting_follows_the_nic_and_the_netns_plan_realizes_it():
    from vnetlab.backends.netns.plan import plan_with_names
    for guest, forwards in ((None, "1"), (True, "1"), (False, "0")):
        doc = _hub_doc(True)
        if guest is not None:
            doc["virtual_machines"][1]["guest_ip_forwarding"] = guest
        topo = build(doc)
        assert (run(topo, "rg1vm1", "vm2").verdict == "Connected") == (forwards == "1")
        state, names = plan_with_names(topo, "t0")
        nva_ns = next(n for n in state.namespaces if n.name == names.endpoints["nva1"])
        assert nva_ns.sysctls["net.ipv4.ip_forward"] == forwards


# -- a subnet with several address prefixes ---------------------------------------------------------------
def _two_range_doc():
    doc = with_()
    doc["virtual_networks"][0]["address_space"] = ["10.0.0.0/24", "10.7.0.0/24"]
    doc["virtual_networks"][0]["subnets"][0] = {"name": "default", "address_prefixes": ["10.0.0.0/29", "10.7.0.0/26"]}
    doc["virtual_machines"] = [{"name": f"vm{i}", "subnet": "vnet1/default", "services": [{"port": 80}]}
                               for i in range(5)]
    return doc


def test_a_subnet_keeps_its_several_prefixes_and_addresses_nics_from_each():
    topo = build(_two_range_doc())
    assert topo.vnet("vnet1").subnet("default").prefixes == ["10.0.0.0/29", "10.7.0.0/26"]
    assert [vm_ip(topo, f"vm{i}") for i in range(5)] == ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.7.0.4", "10.7.0.5"]
    assert run(topo, "vm0", "vm4").verdict == "Connected" and run(topo, "vm4", "vm0").verdict == "Connected"
    assert run(topo, "app1", "vm3").verdict == "Connected"


def test_the_netns_plan_gives_each_range_its_gateway():
    from vnetlab.backends.netns.plan import plan_with_names
    topo = build(_two_range_doc())
    state, names = plan_with_names(topo, "t0")
    bridge = next(b for b in state.bridges if b.alias == "subnet vnet1/default")
    assert bridge.addresses == ["10.0.0.1/29", "10.7.0.1/26"]
    vm4 = names.endpoints["vm4"]
    assert [a.cidr for a in state.addresses if a.ns == vm4] == ["10.7.0.5/26"]
    assert {r.dest for r in state.routes if r.ns == vm4} >= {"10.0.0.0/29", "10.7.0.0/26"}
