"""Outbound to the internet: NAT gateways, public IPs, default outbound access, and what the internet
(or a PaaS service) sees as the source (azure-paas-dns.md section 4, "Test scenarios")."""

import copy
from ipaddress import IPv4Address, IPv4Network

import pytest
from conftest import build
from pydantic import ValidationError

from vnetlab.engine.network import LabView
from vnetlab.engine.outbound import PUBLIC_IP_NET, nat_gateway_addresses, site_outbound_addresses
from vnetlab.engine.trace import trace
from vnetlab.model import AzureError
from vnetlab.topology import parse

LAB = {
    "name": "out", "location": "westeurope", "resource_group": "rg1",
    "virtual_networks": [{"name": "hub", "address_space": ["10.0.0.0/16"], "subnets": [
        {"name": "vms", "address_prefix": "10.0.0.0/24"},
        {"name": "integration", "address_prefix": "10.0.1.0/26", "delegations": ["Microsoft.Web/serverFarms"]},
        {"name": "nva", "address_prefix": "10.0.3.0/24"},
        {"name": "GatewaySubnet", "address_prefix": "10.0.4.0/27"}]}],
    "virtual_machines": [{"name": "vm1", "subnet": "hub/vms", "public_ip_address": "pip-vm1"},
                         {"name": "vm2", "subnet": "hub/vms"},
                         {"name": "nva1", "subnet": "hub/nva", "enable_ip_forwarding": True}],
    "app_service_plans": [{"name": "plan1", "sku": "P1v3"}],
    "web_apps": [{"name": "app1", "plan": "plan1", "vnet_integration": "hub/integration"}],
    "public_ip_addresses": [{"name": "pip-vm1"}, {"name": "pip-nat"}],
    "public_ip_prefixes": [{"name": "pfx-nat", "prefix_length": 28}],
    "nat_gateways": [{"name": "natgw", "public_ip_addresses": ["pip-nat"], "idle_timeout_in_minutes": 5}],
}
ECHO = "public-test"  # the lab's internet host: it sees the flow's source


def lab(**changes) -> dict:
    doc = copy.deepcopy(LAB)
    doc.update(copy.deepcopy(changes))
    return doc


def subnet(doc: dict, name: str) -> dict:
    return next(s for s in doc["virtual_networks"][0]["subnets"] if s["name"] == name)


def pip(topo, name: str) -> str:
    return topo.find("public_ip_addresses", name).ip_address


def refused(doc: dict) -> AzureError:
    with pytest.raises(AzureError) as err:
        build(doc)
    return err.value


# -- the public addresses ------------------------------------------------------------------------------
def test_public_ips_and_prefixes_get_addresses_from_the_labs_public_range():
    topo = build(lab())
    addresses = {IPv4Address(pip(topo, n)) for n in ("pip-vm1", "pip-nat")}
    assert len(addresses) == 2 and all(a in PUBLIC_IP_NET for a in addresses)
    prefix = IPv4Network(topo.find("public_ip_prefixes", "pfx-nat").ip_prefix)
    assert prefix.prefixlen == 28 and prefix.subnet_of(IPv4Network("198.19.0.0/16"))
    assert not any(a in prefix for a in addresses)


def test_a_public_ip_keeps_its_address_when_another_one_is_deleted():
    from vnetlab.lab import allocate_dynamic_addresses
    old = build(lab())
    kept = pip(old, "pip-nat")
    doc = lab(public_ip_addresses=[{"name": "pip-nat"}], nat_gateways=[])
    del doc["virtual_machines"][0]["public_ip_address"]
    from vnetlab.model import Topology
    new = Topology.model_validate(doc)
    allocate_dynamic_addresses(new, old)
    assert new.find("public_ip_addresses", "pip-nat").ip_address == kept


# -- precedence: NAT gateway > instance public IP > default outbound access -------------------------------
def test_a_vm_with_a_public_ip_is_seen_at_it_without_a_nat_gateway():
    topo = build(lab())
    t = trace(topo, "vm1", ECHO, 443)
    assert (t.verdict, t.source_ip_seen) == ("Connected", pip(topo, "pip-vm1"))


def test_a_vm_without_a_public_ip_is_seen_at_its_default_outbound_address():
    topo = build(lab())
    t = trace(topo, "vm2", ECHO, 443)
    assert t.verdict == "Connected"
    assert t.source_ip_seen == str(LabView(topo).public_ip("network_interfaces", "vm2VMNic"))
    assert IPv4Address(t.source_ip_seen) in IPv4Network("192.0.2.0/24")


def test_scenario_1_the_nat_gateway_wins_over_the_public_ip_until_a_udr_sends_the_flow_to_an_appliance():
    doc = lab()
    subnet(doc, "vms")["nat_gateway"] = "natgw"
    topo = build(doc)
    for vm in ("vm1", "vm2"):
        t = trace(topo, vm, ECHO, 443)
        assert (t.verdict, t.source_ip_seen) == ("Connected", pip(topo, "pip-nat"))
        snat = [s for s in t.steps if s.kind == "SNAT"][-1]
        assert snat.resource_id == topo.id_of("nat_gateways", topo.find("nat_gateways", "natgw"))
    doc["route_tables"] = [{"name": "to-nva", "routes": [{"name": "all", "address_prefix": "0.0.0.0/0",
                                                          "next_hop_type": "VirtualAppliance",
                                                          "next_hop_ip_address": "10.0.3.4"}]}]
    subnet(doc, "vms")["route_table"] = "to-nva"
    topo = build(doc)
    t = trace(topo, "vm1", ECHO, 443)
    assert t.verdict == "Connected" and any(s.kind == "VirtualAppliance" for s in t.steps)
    assert t.source_ip_seen == str(LabView(topo).public_ip("network_interfaces", "nva1VMNic"))  # the NVA's egress


def test_a_nat_gateway_uses_its_prefix_addresses_too():
    doc = lab(nat_gateways=[{"name": "natgw", "public_ip_prefixes": ["pfx-nat"]}])
    subnet(doc, "vms")["nat_gateway"] = "natgw"
    topo = build(doc)
    addresses = nat_gateway_addresses(topo, topo.find("nat_gateways", "natgw"))
    assert addresses == list(IPv4Network(topo.find("public_ip_prefixes", "pfx-nat").ip_prefix))
    assert trace(topo, "vm2", ECHO, 443).source_ip_seen == str(addresses[0])


def test_scenario_5_icmp_through_a_nat_gateway_fails_and_tcp_works():
    doc = lab()
    subnet(doc, "vms")["nat_gateway"] = "natgw"
    topo = build(doc)
    assert (trace(topo, "vm2", ECHO, None, "Icmp").reason) == "NatGatewayNoIcmp"
    assert trace(topo, "vm2", ECHO, 443).verdict == "Connected"
    assert trace(build(lab()), "vm2", ECHO, None, "Icmp").verdict == "Connected"  # default outbound: ICMP passes


# -- private subnets ----------------------------------------------------------------------------------------
def test_scenario_6_a_private_subnet_has_no_internet_path_without_a_nat_gateway_or_public_ip():
    doc = lab()
    subnet(doc, "vms")["default_outbound_access"] = False
    topo = build(doc)
    t = trace(topo, "vm2", ECHO, 443)
    assert (t.verdict, t.reason, t.source_ip_seen) == ("TimedOut", "NoOutboundAccess", None)
    assert trace(topo, "vm1", ECHO, 443).source_ip_seen == pip(topo, "pip-vm1")  # its public IP is explicit
    subnet(doc, "vms")["nat_gateway"] = "natgw"
    assert trace(build(doc), "vm2", ECHO, 443).source_ip_seen == pip(build(doc), "pip-nat")
    subnet(doc, "vms")["default_outbound_access"] = True
    del subnet(doc, "vms")["nat_gateway"]
    assert trace(build(doc), "vm2", ECHO, 443).verdict == "Connected"


def test_a_private_subnet_still_reaches_the_vnet():
    doc = lab()
    subnet(doc, "vms")["default_outbound_access"] = False
    topo = build(doc)
    nva = topo.find("network_interfaces", "nva1VMNic").private_ip_address
    assert trace(topo, "vm2", nva, None, "Icmp").verdict == "Connected"


# -- apps ---------------------------------------------------------------------------------------------------
def test_scenario_4_an_app_takes_the_nat_gateway_only_with_route_all():
    doc = lab()
    subnet(doc, "integration")["nat_gateway"] = "natgw"
    topo = build(doc)
    outbound, possible = site_outbound_addresses(topo, topo.find("web_apps", "app1"))
    t = trace(topo, "app1", ECHO, 443)
    assert t.verdict == "Connected" and t.source_ip_seen in outbound and set(outbound) <= set(possible)
    doc["web_apps"][0]["vnet_route_all_enabled"] = True
    topo = build(doc)
    t = trace(topo, "app1", ECHO, 443)
    assert (t.verdict, t.source_ip_seen) == ("Connected", pip(topo, "pip-nat"))
    assert t.source_ip_seen not in site_outbound_addresses(topo, topo.find("web_apps", "app1"))[1]


def test_an_app_with_route_all_and_no_nat_gateway_keeps_its_outbound_address_even_in_a_private_subnet():
    doc = lab()
    doc["web_apps"][0]["vnet_route_all_enabled"] = True
    subnet(doc, "integration")["default_outbound_access"] = False  # delegated subnets ignore it
    topo = build(doc)
    t = trace(topo, "app1", ECHO, 443)
    assert (t.verdict, [t.source_ip_seen]) == ("Connected", site_outbound_addresses(topo, topo.web_apps[0])[0])


# -- service endpoints bypass the NAT gateway ------------------------------------------------------------------
def test_service_endpoint_traffic_bypasses_the_nat_gateway():
    from vnetlab.engine.paas import public_addresses
    doc = lab(storage_accounts=[{"name": "acct1", "network_rule_set": {"default_action": "Allow"}}])
    subnet(doc, "vms")["nat_gateway"] = "natgw"
    topo = build(doc)
    account = str(public_addresses(topo)[("storage_accounts", "acct1")])
    assert trace(topo, "vm2", account, 443).source_ip_seen == pip(topo, "pip-nat")
    subnet(doc, "vms")["service_endpoints"] = ["Microsoft.Storage"]
    topo = build(doc)
    t = trace(topo, "vm2", account, 443)
    assert t.source_ip_seen == topo.find("network_interfaces", "vm2VMNic").private_ip_address
    assert not any(s.kind == "SNAT" for s in t.steps)


# -- what Azure refuses --------------------------------------------------------------------------------------
def test_scenario_2_a_nat_gateway_with_more_than_16_addresses_is_refused():
    doc = lab(nat_gateways=[{"name": "natgw", "public_ip_addresses": ["pip-nat"], "public_ip_prefixes": ["pfx-nat"]}])
    err = refused(doc)
    assert err.code == "NatGatewayTooManyPublicIpAddresses" and "17" in err.message
    doc["nat_gateways"][0]["public_ip_addresses"] = []
    build(doc)  # a /28 alone: 16


def test_scenario_3_a_nat_gateway_on_the_gateway_subnet_is_refused():
    doc = lab()
    subnet(doc, "GatewaySubnet")["nat_gateway"] = "natgw"
    assert refused(doc).code == "NatGatewayCannotBeAttachedToGatewaySubnet"


def test_a_public_ip_serves_one_resource():
    doc = lab()
    doc["virtual_machines"][1]["public_ip_address"] = "pip-vm1"
    assert refused(doc).code == "PublicIPAddressInUse"
    doc = lab(nat_gateways=[{"name": "natgw", "public_ip_addresses": ["pip-vm1"]}])
    assert refused(doc).code == "PublicIPAddressInUse"


def test_references_to_missing_outbound_resources_are_refused():
    doc = lab()
    subnet(doc, "vms")["nat_gateway"] = "nope"
    assert refused(doc).code == "InvalidResourceReference"
    doc = lab()
    doc["virtual_machines"][1]["public_ip_address"] = "nope"
    assert refused(doc).code == "InvalidResourceReference"


def test_a_nat_gateway_takes_standard_public_ips_only():
    doc = lab(public_ip_addresses=[{"name": "pip-vm1"}, {"name": "pip-nat", "sku": "basic"}])
    assert refused(doc).code == "NatGatewayCannotUseBasicPublicIp"


def test_a_nat_gateway_serves_one_virtual_network():
    doc = lab()
    doc["virtual_networks"].append({"name": "other", "address_space": ["10.9.0.0/16"], "subnets": [
        {"name": "a", "address_prefix": "10.9.0.0/24", "nat_gateway": "natgw"}]})
    subnet(doc, "vms")["nat_gateway"] = "natgw"
    assert refused(doc).code == "NatGatewayCannotSpanVirtualNetworks"


def test_a_public_ip_outside_the_labs_range_is_refused():
    doc = lab(public_ip_addresses=[{"name": "pip-vm1", "ip_address": "203.0.113.10"}, {"name": "pip-nat"}])
    assert refused(doc).code == "InvalidPublicIpAddress"


@pytest.mark.parametrize("minutes", [3, 121])
def test_the_idle_timeout_is_4_to_120_minutes(minutes):
    doc = lab(nat_gateways=[{"name": "natgw", "public_ip_addresses": ["pip-nat"], "idle_timeout_in_minutes": minutes}])
    with pytest.raises(ValidationError, match="idle_timeout_in_minutes"):
        build(doc)
    with pytest.raises(AzureError) as err:
        parse(doc)
    assert err.value.code == "NatGatewayInvalidIdleTimeout"
    assert str(err.value.message) == (f"NAT gateway natgw has invalid Idle Timeout {minutes}. The value must be "
                                      "between 4 and 120 minutes.")
    assert build(lab(nat_gateways=[{"name": "natgw", "idle_timeout_in_minutes": minutes + (1 if minutes < 4 else -1)}]))


# -- inbound from the internet: instance public IPs, NAT gateways (outbound only) ---------------------------
def served(doc: dict) -> dict:
    """vm1 and vm2 listen on 22, 80 and 443."""
    for vm in doc["virtual_machines"][:2]:
        vm["services"] = [{"port": p} for p in (22, 80, 443)]
    return doc


def internet_rule(name: str, priority: int, port: str, access: str = "Allow", source: str = "Internet") -> dict:
    return {"name": name, "priority": priority, "direction": "Inbound", "access": access, "protocol": "Tcp",
            "source_address_prefix": source, "source_port_range": "*", "destination_address_prefix": "*",
            "destination_port_range": port}


def test_the_internet_reaches_a_vm_at_its_public_ip_and_the_vm_sees_the_internet_source():
    topo = build(served(lab()))
    vm1 = topo.find("network_interfaces", "vm1VMNic")
    t = trace(topo, "internet", pip(topo, "pip-vm1"), 80, source_ip="198.51.100.9")
    assert (t.verdict, t.source_ip_seen) == ("Connected", "198.51.100.9")
    dnat = next(s for s in t.steps if s.kind == "DNAT")
    assert (dnat.detail.from_, dnat.detail.to) == (pip(topo, "pip-vm1"), vm1.private_ip_address)
    assert dnat.resource_id == topo.id_of("public_ip_addresses", topo.find("public_ip_addresses", "pip-vm1"))
    assert dnat.detail.ip_configuration == vm1.primary_ip_configuration
    assert t.steps[-1].detail.virtual_machine == "vm1" and t.steps[-1].detail.source_seen == "198.51.100.9"
    assert [s.detail.next_hop_type for s in t.return_path] == ["Internet"]  # the reply leaves from the public IP
    assert trace(topo, "internet", pip(topo, "pip-vm1"), 81).reason == "NoListener"
    assert trace(topo, ECHO, "vm1", 80).flow.destination_ip == pip(topo, "pip-vm1")  # a VM's name: its public IP


def test_inbound_to_a_public_ip_meets_the_subnet_and_nic_nsgs_with_the_internet_source():
    doc = served(lab(network_security_groups=[
        {"name": "nsg-sub", "security_rules": [internet_rule("web", 100, "80"), internet_rule("ssh", 110, "22")]},
        {"name": "nsg-nic", "security_rules": [internet_rule("web", 100, "80"),
                                               internet_rule("office-ssh", 110, "22", source="203.0.113.0/24")]}]))
    subnet(doc, "vms")["network_security_group"] = "nsg-sub"
    doc["virtual_machines"][0]["network_security_group"] = "nsg-nic"
    topo = build(doc)
    address = pip(topo, "pip-vm1")
    web = trace(topo, "internet", address, 80, source_ip="198.51.100.9")
    nsgs = [(s.detail.nsg, s.detail.rule) for s in web.steps if s.kind == "NetworkSecurityGroup"]
    assert web.verdict == "Connected" and nsgs == [("nsg-sub", "web"), ("nsg-nic", "web")]  # subnet, then NIC
    assert trace(topo, "internet", address, 22, source_ip="203.0.113.7").verdict == "Connected"
    denied = trace(topo, "internet", address, 22, source_ip="198.51.100.9")
    assert (denied.reason, denied.steps[-1].detail.rule) == ("NsgDenied", "DenyAllInbound")
    assert trace(topo, "internet", address, 443, source_ip="198.51.100.9").steps[-1].detail.nsg == "nsg-sub"


def test_a_nat_gateway_is_outbound_only_but_a_public_ip_in_its_subnet_still_takes_inbound():
    doc = served(lab())
    subnet(doc, "vms")["nat_gateway"] = "natgw"
    topo = build(doc)
    refused = trace(topo, "internet", pip(topo, "pip-nat"), 80)
    assert (refused.verdict, refused.reason) == ("Refused", "NatGatewayInboundRefused")
    assert refused.steps[-1].resource_id == topo.id_of("nat_gateways", topo.find("nat_gateways", "natgw"))
    assert trace(topo, "internet", pip(topo, "pip-nat"), None, "Icmp").reason == "NatGatewayInboundNotAnswered"
    inbound = trace(topo, "internet", "vm1", 80)   # vm1 has pip-vm1: inbound through it, outbound through the NAT
    assert inbound.verdict == "Connected" and inbound.flow.destination_ip == pip(topo, "pip-vm1")
    assert trace(topo, "vm1", ECHO, 80).source_ip_seen == pip(topo, "pip-nat")
    assert trace(topo, "internet", "vm2", 80).reason == "PrivateAddressOnInternet"   # no public IP: no way in


def test_a_nat_gateway_prefix_address_and_a_vpn_gateway_public_ip_take_no_inbound():
    doc = served(lab(nat_gateways=[{"name": "natgw", "public_ip_prefixes": ["pfx-nat"]}],
              public_ip_addresses=[{"name": "pip-vm1"}, {"name": "pip-nat"}, {"name": "pip-gw"}],
              virtual_network_gateways=[{"name": "gw1", "virtual_network": "hub", "public_ip_address": "pip-gw"}]))
    subnet(doc, "vms")["nat_gateway"] = "natgw"
    topo = build(doc)
    last = str(list(IPv4Network(topo.find("public_ip_prefixes", "pfx-nat").ip_prefix))[-1])
    assert trace(topo, "internet", last, 443).reason == "NatGatewayInboundRefused"
    gw = trace(topo, "internet", pip(topo, "pip-gw"), 443)
    assert gw.reason == "NoHostAtDestination" and "virtual network gateway gw1" in gw.steps[-1].detail.why


def test_a_reply_sent_to_an_appliance_does_not_leave_from_the_public_ip():
    doc = served(lab(route_tables=[{"name": "rt", "routes": [{"name": "all", "address_prefix": "0.0.0.0/0",
                                                        "next_hop_type": "VirtualAppliance",
                                                        "next_hop_ip_address": "10.0.3.4"}]}]))
    subnet(doc, "vms")["route_table"] = "rt"
    topo = build(doc)
    t = trace(topo, "internet", pip(topo, "pip-vm1"), 80)
    assert t.reason == "ReturnPathDropped" and t.return_path[-1].detail.next_hop_type == "VirtualAppliance"


def test_a_stopped_vm_does_not_answer_at_its_public_ip():
    doc = served(lab())
    doc["virtual_machines"][0]["power_state"] = "stopped"
    topo = build(doc)
    assert trace(topo, "internet", pip(topo, "pip-vm1"), 80).reason == "VmNotRunning"


def test_the_snat_step_names_the_nat_gateway_idle_timeout():
    doc = served(lab())
    subnet(doc, "vms")["nat_gateway"] = "natgw"
    topo = build(doc)
    snat = [s for s in trace(topo, "vm2", ECHO, 443).steps if s.kind == "SNAT"][-1]
    assert snat.detail.idle_timeout_in_minutes == topo.find("nat_gateways", "natgw").idle_timeout_in_minutes == 5
    assert "TCP idle timeout 5 minutes" in snat.detail.why
    assert snat.to_dict()["idle_timeout_in_minutes"] == 5
    plain = [s for s in trace(topo, "vm1", ECHO, 443).steps if s.kind == "SNAT"]
    assert all(s.detail.idle_timeout_in_minutes == 5 for s in plain)  # vm1 is behind the NAT gateway too
    del subnet(doc, "vms")["nat_gateway"]
    public = [s for s in trace(build(doc), "vm1", ECHO, 443).steps if s.kind == "SNAT"][-1]
    assert public.detail.idle_timeout_in_minutes is None and "idle_timeout_in_minutes" not in public.to_dict()


def test_cli_check_from_the_internet_to_a_public_ip(tmp_path):
    import json

    import yaml
    from conftest import runner

    from vnetlab.cli.main import app
    f = tmp_path / "lab.yaml"
    f.write_text(yaml.safe_dump(served(lab())))
    home = str(tmp_path / "lab")
    assert runner.invoke(app, ["up", str(f), "--home", home]).exit_code == 0
    address = pip(build(served(lab())), "pip-vm1")
    got = runner.invoke(app, ["check", "internet", address, "--port", "80", "--from", "198.51.100.9", "--home", home,
                              "-o", "json"])
    assert got.exit_code == 0, got.output
    result = json.loads(got.output)
    assert result["source_ip_seen"] == "198.51.100.9" and any(s["kind"] == "DNAT" for s in result["steps"])
    by_name = runner.invoke(app, ["check", ECHO, "vm1", "--port", "80", "--home", home])
    assert by_name.exit_code == 0 and "DNAT" in by_name.output
