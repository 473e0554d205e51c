"""On-premises through a VPN gateway (issue 10 section 3; azure-paas-dns.md section 6 "Test scenarios";
azure-networking.md section 4.1): the gateway's routes, gateway transit, Azure's refusals, and traces
to and from the on-premises site."""

import copy

import pytest
from conftest import build

from vnetlab.engine import gateways
from vnetlab.engine.network import LabView
from vnetlab.engine.security import virtual_network_tag
from vnetlab.engine.trace import Reason, StepKind, Verdict, trace
from vnetlab.model import AzureError

LAB = {
    "name": "vpn", "location": "westeurope", "resource_group": "rg1",
    "virtual_networks": [
        {"name": "hub", "address_space": ["10.0.0.0/16"], "subnets": [
            {"name": "vms", "address_prefix": "10.0.0.0/24"},
            {"name": "integration", "address_prefix": "10.0.1.0/26", "delegations": ["Microsoft.Web/serverFarms"]},
            {"name": "nva", "address_prefix": "10.0.3.0/24"},
            {"name": "GatewaySubnet", "address_prefix": "10.0.255.0/27"}],
         "peerings": [{"name": "hub-to-spoke", "remote_virtual_network": "spoke", "allow_gateway_transit": True},
                      {"name": "hub-to-spoke2", "remote_virtual_network": "spoke2"}]},
        {"name": "spoke", "address_space": ["10.1.0.0/16"], "subnets": [{"name": "vms", "address_prefix": "10.1.0.0/24"}],
         "peerings": [{"name": "spoke-to-hub", "remote_virtual_network": "hub", "use_remote_gateways": True}]},
        {"name": "spoke2", "address_space": ["10.2.0.0/16"], "subnets": [{"name": "vms", "address_prefix": "10.2.0.0/24"}],
         "peerings": [{"name": "spoke2-to-hub", "remote_virtual_network": "hub"}]}],
    "virtual_machines": [{"name": "hubvm", "subnet": "hub/vms", "services": [{"port": 80}]},
                         {"name": "spokevm", "subnet": "spoke/vms", "services": [{"port": 80}]},
                         {"name": "spoke2vm", "subnet": "spoke2/vms", "services": [{"port": 80}]},
                         {"name": "nva1", "subnet": "hub/nva", "enable_ip_forwarding": True}],
    "app_service_plans": [{"name": "plan1", "sku": "P1v3"}],
    "web_apps": [{"name": "app1", "plan": "plan1", "vnet_integration": "hub/integration"}],
    "public_ip_addresses": [{"name": "pip-gw"}],
    "virtual_network_gateways": [{"name": "gw1", "virtual_network": "hub", "sku": "VpnGw1",
                                  "public_ip_address": "pip-gw"}],
    "local_network_gateways": [{"name": "lng-office", "gateway_ip_address": "198.51.100.1",
                                "address_prefixes": ["192.168.0.0/16"]}],
    "connections": [{"name": "hub-to-office", "virtual_network_gateway": "gw1",
                     "local_network_gateway": "lng-office", "shared_key": "s3cret"}],
    "on_premises_sites": [{"name": "office", "local_network_gateway": "lng-office", "shared_key": "s3cret",
                           "hosts": [{"name": "onprem1", "ip": "192.168.1.10"}]}],
}
ONPREM = "onprem1"


def lab(**changes) -> dict:
    doc = copy.deepcopy(LAB)
    doc.update(copy.deepcopy(changes))
    return doc


def vnet(doc: dict, name: str) -> dict:
    return next(v for v in doc["virtual_networks"] if v["name"] == name)


def peering(doc: dict, vnet_name: str, name: str) -> dict:
    return next(p for p in vnet(doc, vnet_name)["peerings"] if p["name"] == name)


def subnet(doc: dict, vnet_name: str, name: str) -> dict:
    return next(s for s in vnet(doc, vnet_name)["subnets"] if s["name"] == name)


def refused(doc: dict) -> AzureError:
    with pytest.raises(AzureError) as err:
        build(doc)
    return err.value


def gateway_routes(topo, ref: str) -> list:
    return [r for r in LabView(topo).subnet_view(ref).routes if r.source == "VirtualNetworkGateway"]


def ip_of(topo, vm: str) -> str:
    return topo.find("network_interfaces", f"{vm}VMNic").private_ip_address


# -- effective routes ------------------------------------------------------------------------------------
def test_the_hub_gets_the_local_network_gateways_prefixes_through_the_gateway():
    topo = build(lab())
    [route] = gateway_routes(topo, "hub/vms")
    assert (route.address_prefix, route.next_hop_type, route.state) == ("192.168.0.0/16", "VirtualNetworkGateway",
                                                                         "Active")
    assert route.next_hop_ip == topo.find("public_ip_addresses", "pip-gw").ip_address  # active-standby: its public IP
    default = next(r for r in LabView(topo).subnet_view("hub/vms").routes
                   if r.address_prefix == "192.168.0.0/16" and r.source == "Default")
    assert default.state == "Invalid"  # the gateway's route beats the default None for the same prefix


def test_gateway_transit_carries_the_routes_to_the_spoke_that_uses_the_remote_gateway_only():
    topo = build(lab())
    assert [r.address_prefix for r in gateway_routes(topo, "spoke/vms")] == ["192.168.0.0/16"]
    assert gateway_routes(topo, "spoke2/vms") == []


def test_a_hub_peering_without_gateway_transit_gives_the_spoke_no_gateway_routes():
    doc = lab()
    peering(doc, "hub", "hub-to-spoke")["allow_gateway_transit"] = False
    assert gateway_routes(build(doc), "spoke/vms") == []


def test_disabling_gateway_route_propagation_hides_the_routes_on_that_subnet():
    doc = lab(route_tables=[{"name": "rt-nobgp", "disable_bgp_route_propagation": True}])
    subnet(doc, "spoke", "vms")["route_table"] = "rt-nobgp"
    topo = build(doc)
    assert gateway_routes(topo, "spoke/vms") == []
    assert gateway_routes(topo, "hub/vms") != []


def test_the_virtual_network_tag_holds_the_connected_on_premises_prefixes():
    topo = build(lab())
    import ipaddress
    ip = int(ipaddress.IPv4Address("192.168.1.10"))
    assert virtual_network_tag(topo, topo.vnet("spoke")).is_local(ip)
    assert not virtual_network_tag(topo, topo.vnet("spoke2")).is_local(ip)


# -- Azure's refusals -----------------------------------------------------------------------------------
def test_use_remote_gateways_without_a_gateway_in_the_remote_vnet_is_refused():
    err = refused(lab(virtual_network_gateways=[], connections=[]))
    assert err.code == "RemoteVnetHasNoGateways"
    assert "spoke-to-hub cannot have UseRemoteGateway flag set to true because remote virtual network" in str(err)
    assert str(err).rstrip().endswith("referenced by the peering does not have any gateways.")


def test_use_remote_gateways_from_a_vnet_with_its_own_gateway_is_refused():
    doc = lab()
    vnet(doc, "spoke")["subnets"].append({"name": "GatewaySubnet", "address_prefix": "10.1.255.0/27"})
    doc["virtual_network_gateways"].append({"name": "gw-spoke", "virtual_network": "spoke"})
    assert refused(doc).code == "VnetHasGatewayCannotUseRemoteGateways"


def test_a_gateway_needs_the_gateway_subnet():
    doc = lab()
    vnet(doc, "hub")["subnets"] = [s for s in vnet(doc, "hub")["subnets"] if s["name"] != "GatewaySubnet"]
    err = refused(doc)
    assert err.code == "GatewaySubnetNotFound" and "GatewaySubnet" in str(err)


def test_the_gateway_subnet_holds_no_vm_and_no_nsg_and_is_not_delegated():
    doc = lab()
    doc["virtual_machines"].append({"name": "intruder", "subnet": "hub/GatewaySubnet"})
    assert refused(doc).code == "GatewaySubnetCannotHaveNetworkInterfaces"
    doc = lab(network_security_groups=[{"name": "nsg-gw"}])
    subnet(doc, "hub", "GatewaySubnet")["network_security_group"] = "nsg-gw"
    err = refused(doc)
    assert "can not be associated to the GatewaySubnet" in str(err)
    doc = lab()
    subnet(doc, "hub", "GatewaySubnet")["delegations"] = ["Microsoft.Web/serverFarms"]
    assert refused(doc).code == "GatewaySubnetCannotBeDelegated"


def test_a_gateway_sku_must_be_a_vpn_sku():
    doc = lab()
    doc["virtual_network_gateways"][0]["sku"] = "Standard_v2"
    assert refused(doc).code == "InvalidGatewaySku"


def test_the_gateways_public_ip_serves_it_alone():
    doc = lab()
    doc["virtual_machines"][0]["public_ip_address"] = "pip-gw"
    assert refused(doc).code == "PublicIPAddressInUse"


def test_a_connection_names_existing_gateways():
    doc = lab()
    doc["connections"][0]["local_network_gateway"] = "nowhere"
    assert refused(doc).code == "InvalidResourceReference"


def test_an_on_premises_host_lives_in_its_local_network_gateways_prefixes():
    doc = lab()
    doc["on_premises_sites"][0]["hosts"].append({"name": "stray", "ip": "172.16.0.5"})
    assert refused(doc).code == "OnPremisesHostOutsideSite"


def test_a_site_whose_local_network_gateway_is_deleted_stays_unconnected():
    topo = build(lab(connections=[], local_network_gateways=[]))
    assert gateway_routes(topo, "hub/vms") == []
    assert trace(topo, "hubvm", ONPREM, 80).reason is Reason.ROUTE_NONE
    assert trace(topo, ONPREM, "hubvm", 80).reason is Reason.ON_PREMISES_NO_ROUTE


# -- the connection --------------------------------------------------------------------------------------
def test_a_connection_is_connected_when_the_sites_device_has_the_same_key():
    topo = build(lab())
    assert gateways.connection_status(topo, topo.connections[0]) == "Connected"
    doc = lab()
    doc["connections"][0]["shared_key"] = "other"
    topo = build(doc)
    assert gateways.connection_status(topo, topo.connections[0]) == "NotConnected"
    t = trace(topo, "hubvm", ONPREM, 80)
    assert t.reason is Reason.CONNECTION_NOT_CONNECTED
    assert t.steps[-1].kind is StepKind.GATEWAY and t.steps[-1].dropped


# -- traces to on-premises -------------------------------------------------------------------------------
def test_a_hub_vm_reaches_the_on_premises_host_through_the_gateway():
    topo = build(lab())
    t = trace(topo, "hubvm", ONPREM, 80)
    assert t.verdict is Verdict.CONNECTED, t.to_dict()
    kinds = [s.kind for s in t.steps]
    assert kinds == [StepKind.ROUTE, StepKind.GATEWAY, StepKind.DELIVER]
    assert t.steps[0].detail.next_hop_type == "VirtualNetworkGateway"
    gw = t.steps[1].detail
    assert (gw.gateway, gw.connection, gw.local_network_gateway, gw.connection_status, gw.direction) == (
        "gw1", "hub-to-office", "lng-office", "Connected", "ToOnPremises")
    assert t.steps[-1].detail.on_premises_site == "office"
    assert t.source_ip_seen == ip_of(topo, "hubvm")
    assert [s.kind for s in t.return_path][0] is StepKind.GATEWAY


def test_a_spoke_vm_reaches_on_premises_through_the_hubs_gateway_by_transit():
    topo = build(lab())
    t = trace(topo, "spokevm", ONPREM, 80)
    assert t.verdict is Verdict.CONNECTED, t.to_dict()
    assert [s.kind for s in t.steps] == [StepKind.ROUTE, StepKind.PEERING, StepKind.GATEWAY, StepKind.DELIVER]
    assert t.source_ip_seen == ip_of(topo, "spokevm")


def test_a_spoke_without_remote_gateways_has_no_path_to_on_premises():
    t = trace(build(lab()), "spoke2vm", ONPREM, 80)
    assert t.reason is Reason.ROUTE_NONE  # 192.168.0.0/16 keeps its default None route


def test_an_integrated_app_reaches_on_premises_without_route_all_and_is_seen_at_its_integration_address():
    topo = build(lab())
    assert not topo.find("web_apps", "app1").route_all
    t = trace(topo, "app1", ONPREM, 443)
    assert t.verdict is Verdict.CONNECTED, t.to_dict()
    net = LabView(topo)
    assert t.source_ip_seen == str(net.sandbox(topo.find("web_apps", "app1")).integration_ip)
    assert t.steps[-1].detail.source_seen == t.source_ip_seen
    assert StepKind.GATEWAY in [s.kind for s in t.steps]


def test_a_port_the_on_premises_host_does_not_serve_is_refused():
    assert trace(build(lab()), "hubvm", ONPREM, 8080).reason is Reason.NO_LISTENER


def test_an_address_of_the_site_without_a_host_times_out():
    assert trace(build(lab()), "hubvm", "192.168.9.9", 80).reason is Reason.NO_HOST_AT_DESTINATION


# -- traces from on-premises -----------------------------------------------------------------------------
def test_the_on_premises_host_reaches_a_spoke_vm_through_the_gateway():
    topo = build(lab())
    t = trace(topo, ONPREM, "spokevm", 80)
    assert t.verdict is Verdict.CONNECTED, t.to_dict()
    assert [s.kind for s in t.steps] == [StepKind.GATEWAY, StepKind.ROUTE, StepKind.PEERING, StepKind.DELIVER]
    assert t.steps[0].detail.direction == "FromOnPremises"
    assert t.steps[1].detail.subnet == "hub/GatewaySubnet"
    assert t.source_ip_seen == "192.168.1.10"


def test_the_on_premises_host_has_no_route_to_a_spoke_that_does_not_use_the_gateway():
    t = trace(build(lab()), ONPREM, "spoke2vm", 80)
    assert t.reason is Reason.ON_PREMISES_NO_ROUTE


def test_the_integration_address_refuses_connections_from_on_premises():
    topo = build(lab())
    ip = str(LabView(topo).sandbox(topo.find("web_apps", "app1")).integration_ip)
    assert trace(topo, ONPREM, ip, 80).reason is Reason.INTEGRATION_INBOUND_REFUSED


# -- NSGs and UDRs on the gateway path -------------------------------------------------------------------
def test_default_nsg_rules_admit_on_premises_as_virtual_network_and_a_deny_rule_blocks_it():
    doc = lab(network_security_groups=[{"name": "nsg-spoke"}])
    subnet(doc, "spoke", "vms")["network_security_group"] = "nsg-spoke"
    t = trace(build(doc), ONPREM, "spokevm", 80)
    assert t.verdict is Verdict.CONNECTED
    assert next(s for s in t.steps if s.kind is StepKind.NSG).detail.rule == "AllowVNetInBound"
    doc["network_security_groups"][0]["security_rules"] = [
        {"name": "deny-onprem", "priority": 100, "direction": "Inbound", "access": "Deny", "protocol": "*",
         "source_address_prefix": "192.168.0.0/16"}]
    t = trace(build(doc), ONPREM, "spokevm", 80)
    assert t.reason is Reason.NSG_DENIED and t.steps[-1].detail.rule == "deny-onprem"


def test_a_udr_on_the_gateway_subnet_sends_on_premises_traffic_through_an_appliance():
    doc = lab(route_tables=[{"name": "rt-gw", "routes": [
        {"name": "spoke-via-nva", "address_prefix": "10.1.0.0/16", "next_hop_type": "VirtualAppliance",
         "next_hop_ip_address": "10.0.3.4"}]}])
    subnet(doc, "hub", "GatewaySubnet")["route_table"] = "rt-gw"
    topo = build(doc)
    assert ip_of(topo, "nva1") == "10.0.3.4"
    t = trace(topo, ONPREM, "spokevm", 80)
    assert t.verdict is Verdict.CONNECTED, t.to_dict()
    assert [s.kind for s in t.steps] == [StepKind.GATEWAY, StepKind.ROUTE, StepKind.APPLIANCE, StepKind.ROUTE,
                                         StepKind.PEERING, StepKind.DELIVER]


def test_a_udr_to_the_virtual_network_gateway_uses_it_where_propagation_is_off():
    doc = lab(route_tables=[{"name": "rt-vpn", "disable_bgp_route_propagation": True, "routes": [
        {"name": "office", "address_prefix": "192.168.1.0/24", "next_hop_type": "VirtualNetworkGateway"}]}])
    subnet(doc, "hub", "vms")["route_table"] = "rt-vpn"
    topo = build(doc)
    assert gateway_routes(topo, "hub/vms") == []
    t = trace(topo, "hubvm", ONPREM, 80)
    assert t.verdict is Verdict.CONNECTED and t.steps[0].detail.source == "User"


def test_a_udr_to_the_virtual_network_gateway_without_one_ends_with_no_gateway():
    doc = lab(route_tables=[{"name": "rt-vpn", "routes": [
        {"name": "office", "address_prefix": "192.168.1.0/24", "next_hop_type": "VirtualNetworkGateway"}]}])
    subnet(doc, "spoke2", "vms")["route_table"] = "rt-vpn"
    assert trace(build(doc), "spoke2vm", ONPREM, 80).reason is Reason.NO_GATEWAY


def test_a_udr_to_the_gateway_for_an_address_no_site_holds_is_dropped_at_the_gateway():
    doc = lab(route_tables=[{"name": "rt-vpn", "routes": [
        {"name": "all", "address_prefix": "0.0.0.0/0", "next_hop_type": "VirtualNetworkGateway"}]}])
    subnet(doc, "hub", "vms")["route_table"] = "rt-vpn"
    t = trace(build(doc), "hubvm", "203.0.113.10", 443)
    assert t.reason is Reason.GATEWAY_NO_ROUTE


# -- the CLI ---------------------------------------------------------------------------------------------
def test_the_cli_traces_from_on_premises_shows_gateway_routes_and_the_connection_status(tmp_path):
    import json

    from conftest import cli, up_note
    home = up_note(tmp_path, lab())
    res = cli(home, "check", ONPREM, "spokevm", "--port", "80", "-o", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["source_ip_seen"] == "192.168.1.10"
    from vnetlab.wording import step_detail
    steps = json.loads(cli(home, "check", "spokevm", ONPREM, "--port", "80", "-o", "json").output)["steps"]
    gateway_step = next(s for s in steps if s["kind"] == "VirtualNetworkGateway")
    assert step_detail(gateway_step) == ("VPN gateway gw1 in hub, to on-premises via connection hub-to-office "
                                         "(Connected) to local network gateway lng-office")
    routes = json.loads(cli(home, "routes", "spokevm", "-o", "json").output)["value"]
    assert {"source": "VirtualNetworkGateway", "state": "Active", "address_prefix": "192.168.0.0/16",
            "next_hop_type": "VirtualNetworkGateway"}.items() <= next(
        r for r in routes if r["source"] == "VirtualNetworkGateway").items()
    [conn] = json.loads(cli(home, "show", "hub-to-office", "-o", "json").output)
    assert conn["type"] == "Microsoft.Network/connections"
    assert conn["properties"]["connection_status"] == "Connected"
    from vnetlab.lab import Lab
    from vnetlab.ui import resource
    page = resource(Lab.open(home), {"ref": "virtual_network_gateways:gw1"})  # the web page's click on the gateway
    assert page["type"] == "Microsoft.Network/virtualNetworkGateways" and page["properties"]["sku"] == "VpnGw1"


def test_the_cli_refuses_use_remote_gateways_without_a_gateway_with_exit_2(tmp_path):
    import yaml

    from conftest import cli, up_note
    home = up_note(tmp_path, lab())
    f = tmp_path / "nogw.yaml"
    f.write_text(yaml.safe_dump(lab(virtual_network_gateways=[], connections=[])))
    res = cli(home, "up", str(f))
    assert res.exit_code == 2 and "RemoteVnetHasNoGateways" in res.output
    assert cli(home, "show", "gw1").exit_code == 0  # nothing changed: the gateway is still there


def test_network_watchers_connectivity_check_shows_the_gateway_as_a_hop():
    from vnetlab.api.watcher import connectivity_result
    topo = build(lab())
    net = LabView(topo)
    result = connectivity_result(net, trace(net, "spokevm", ONPREM, 80).to_dict())
    assert result["connectionStatus"] == "Reachable"
    assert [h["type"] for h in result["hops"]] == ["Source", "VirtualNetworkGateway", "VirtualNetwork"]
    gw_hop = result["hops"][1]
    assert gw_hop["resourceId"] == topo.id_of("virtual_network_gateways", topo.virtual_network_gateways[0])
    assert gw_hop["address"] == str(gateways.gateway_private_ip(topo, topo.virtual_network_gateways[0]))
    blocked = connectivity_result(net, trace(net, "spoke2vm", ONPREM, 80).to_dict())
    assert blocked["connectionStatus"] == "Unreachable" and "VirtualNetworkGateway" not in [
        h["type"] for h in blocked["hops"]]
