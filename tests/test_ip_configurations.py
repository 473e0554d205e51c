"""A NIC's several IP configurations (issue 8, 3): the model keeps them as ARM does, Azure's
refusals, dynamic secondary addresses, the schema and the export round trip, and the engine
delivering to a secondary address (NSG evaluated with it, the trace naming the configuration)."""

from __future__ import annotations

import copy
import json

import pytest
import yaml
from conftest import NOTE, build, cli, up_note

from vnetlab.engine.network import LabView
from vnetlab.engine.trace import trace
from vnetlab.lab import allocate_dynamic_addresses
from vnetlab.model import AzureError, Topology
from vnetlab.topology import dump, export_doc, parse
from vnetlab.validation import validate

VM2 = {"name": "vm2", "subnet": "vnet1/default", "private_ip_address": "10.0.0.10", "services": [{"port": 22}]}


def lab(vm_changes: dict | None = None, **changes) -> dict:
    """The note's lab with a second VM (the client) and the first VM's NIC changed by ``vm_changes``."""
    doc = copy.deepcopy(NOTE)
    doc["virtual_machines"][0].update(vm_changes or {})
    doc["virtual_machines"].append(copy.deepcopy(VM2))
    doc.update(changes)
    return doc


TWO_CONFIGS = {"private_ip_address": None, "ip_configurations": [
    {"name": "ipconfig1", "private_ip_address": "10.0.0.4", "primary": True},
    {"name": "web", "private_ip_address": "10.0.0.5"}]}


def nic_of(topo: Topology, vm: str = "rg1vm1"):
    return topo.find("network_interfaces", topo.find("virtual_machines", vm).network_interface)


def refused(doc: dict) -> AzureError:
    with pytest.raises(AzureError) as err:
        topo = parse(doc)
        allocate_dynamic_addresses(topo, None)
        validate(topo)
    return err.value


# -- model -------------------------------------------------------------------------------------------

def test_arm_form_keeps_every_configuration_with_one_primary():
    doc = lab({k: v for k, v in TWO_CONFIGS.items() if v is not None})
    del doc["virtual_machines"][0]["private_ip_address"]
    nic = nic_of(build(doc))
    assert [(c.name, c.private_ip_address, c.private_ip_allocation_method, c.primary) for c in nic.ip_configurations] \
        == [("ipconfig1", "10.0.0.4", "Static", True), ("web", "10.0.0.5", "Static", False)]
    assert nic.private_ip_address == "10.0.0.4" and nic.addresses == ["10.0.0.4", "10.0.0.5"]
    assert nic.ip_configuration_at("10.0.0.5") == "web"


def test_the_primary_need_not_come_first():
    doc = lab({"ip_configurations": [{"name": "b", "private_ip_address": "10.0.0.5"},
                                     {"name": "a", "private_ip_address": "10.0.0.6", "primary": True}]})
    del doc["virtual_machines"][0]["private_ip_address"]
    nic = nic_of(build(doc))
    assert (nic.primary_ip_configuration, nic.private_ip_address) == ("a", "10.0.0.6")
    assert [c.name for c in nic.secondary_ip_configurations] == ["b"]


def test_secondary_address_shorthand_names_them_ipconfig2_on():
    nic = nic_of(build(lab({"secondary_ip_addresses": ["10.0.0.5", "10.0.0.6"]})))
    assert [(c.name, c.private_ip_address, c.private_ip_allocation_method) for c in nic.ip_configurations] == [
        ("ipconfig1", "10.0.0.4", "Static"), ("ipconfig2", "10.0.0.5", "Static"), ("ipconfig3", "10.0.0.6", "Static")]


def test_a_nic_of_its_own_takes_the_same_forms():
    doc = lab()
    doc["network_interfaces"] = [{"name": "nic9", "subnet": "vnet1/default", "ip_configurations": [
        {"name": "one", "private_ip_address": "10.0.0.20", "primary": True}, {"name": "two"}]}]
    nic = build(doc).find("network_interfaces", "nic9")
    assert nic.addresses[0] == "10.0.0.20" and nic.secondary_ip_configurations[0].private_ip_allocation_method == \
        "Dynamic" and nic.secondary_ip_configurations[0].private_ip_address is not None


@pytest.mark.parametrize("configs,code", [
    ([{"name": "a", "private_ip_address": "10.0.0.5"}, {"name": "b", "private_ip_address": "10.0.0.6"}],
     "NetworkInterfaceMustHaveOneOneIPConfigAsPrimary"),
    ([{"name": "a", "primary": True}, {"name": "b", "primary": True}], "NetworkInterfaceMustHaveOneOneIPConfigAsPrimary"),
    ([{"name": "a", "primary": True}, {"name": "A"}], "DuplicateResourceName"),
    ([{"name": "a", "private_ip_address": "10.0.0.5", "primary": True},
      {"name": "b", "private_ip_address": "10.0.0.5"}], "PrivateIPAddressIsAllocated"),
    ([{"name": "a", "primary": True}, {"name": "b", "private_ip_address": "10.0.0.10"}],
     "PrivateIPAddressIsAllocated"),  # vm2's address
    ([{"name": "a", "primary": True}, {"name": "b", "private_ip_address": "10.0.0.70"}], "PrivateIPAddressNotInSubnet"),
    ([{"name": "a", "primary": True}, {"name": "b", "private_ip_address": "10.0.0.2"}],
     "PrivateIPAddressInReservedRange"),
    ([], "NetworkInterfaceMustHaveIpConfiguration"),
])
def test_azure_refuses(configs, code):
    doc = lab({"ip_configurations": configs})
    del doc["virtual_machines"][0]["private_ip_address"]
    err = refused(doc)
    assert err.code == code, err
    if code == "PrivateIPAddressIsAllocated":
        assert "/ipConfigurations/b" in str(err)  # names the configuration, as Azure does


def test_a_stored_secondary_marked_primary_is_refused():
    err = refused(lab({"secondary_ip_configurations": [{"name": "x", "private_ip_address": "10.0.0.5",
                                                         "primary": True}]}))
    assert err.code == "NetworkInterfaceMustHaveOneOneIPConfigAsPrimary"


def test_dynamic_secondaries_take_free_addresses_and_keep_them():
    doc = lab({"ip_configurations": [{"name": "p", "private_ip_address": "10.0.0.4", "primary": True},
                                     {"name": "s1"}, {"name": "s2"}]})
    del doc["virtual_machines"][0]["private_ip_address"]
    first = build(doc)
    assert nic_of(first).addresses == ["10.0.0.4", "10.0.0.5", "10.0.0.6"]
    # a new NIC before it in the file does not move them: dynamic addresses are kept across changes
    again = copy.deepcopy(doc)
    again["virtual_machines"].insert(0, {"name": "vm0", "subnet": "vnet1/default"})
    second = parse(again)
    allocate_dynamic_addresses(second, first)
    validate(second)
    assert nic_of(second).addresses == ["10.0.0.4", "10.0.0.5", "10.0.0.6"]
    assert nic_of(second, "vm0").private_ip_address == "10.0.0.7"


def test_a_full_subnet_refuses_a_dynamic_secondary():
    doc = lab(virtual_networks=[{"name": "vnet1", "address_space": ["10.0.0.0/24"], "subnets": [
        {"name": "default", "address_prefix": "10.0.0.0/29"},
        {"name": "integration", "address_prefix": "10.0.0.128/26", "delegations": ["Microsoft.Web/serverFarms"]}]}])
    doc["virtual_machines"] = [{"name": "rg1vm1", "subnet": "vnet1/default", "ip_configurations": [
        {"name": "a", "primary": True}, {"name": "b"}, {"name": "c"}, {"name": "d"}]}]  # /29: 3 usable
    doc["web_apps"] = []
    assert refused(doc).code == "SubnetIsFull"


def test_export_round_trip_keeps_the_configurations():
    topo = build(lab({"secondary_ip_addresses": ["10.0.0.5"]}))
    again = parse(yaml.safe_load(dump(topo)))
    assert again == topo
    nic = export_doc(topo)["network_interfaces"][0]
    assert nic["secondary_ip_configurations"] == [{"name": "ipconfig2", "private_ip_address": "10.0.0.5",
                                                   "private_ip_allocation_method": "Static"}]


def test_the_schema_takes_every_form():
    jsonschema = pytest.importorskip("jsonschema")
    from vnetlab.topology import schema
    check = jsonschema.Draft202012Validator(json.loads(schema()))
    doc = lab({"secondary_ip_addresses": ["10.0.0.5"]})
    doc["network_interfaces"] = [{"name": "nic9", "subnet": "vnet1/default", "ip_configurations": [
        {"name": "one", "private_ip_address": "10.0.0.20", "primary": True}, {"name": "two"}]}]
    assert not list(check.iter_errors(doc))
    assert not list(check.iter_errors(export_doc(build(doc))))
    doc["network_interfaces"][0]["ip_configurations"][1]["colour"] = "red"
    assert list(check.iter_errors(doc))


# -- engine ------------------------------------------------------------------------------------------

SECONDARY_ONLY_NSG = {"name": "nsg-nic", "security_rules": [
    {"name": "web-on-secondary", "priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
     "source_address_prefix": "*", "destination_address_prefix": "10.0.0.5", "destination_port_range": "80"},
    {"name": "deny-web", "priority": 200, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
     "source_address_prefix": "*", "destination_address_prefix": "*", "destination_port_range": "80"}]}


def secondary_lab() -> Topology:
    return build(lab({"secondary_ip_addresses": ["10.0.0.5"], "network_security_group": "nsg-nic"},
                     network_security_groups=[SECONDARY_ONLY_NSG]))


def test_a_secondary_address_reaches_the_vm_and_the_trace_names_its_configuration():
    t = trace(secondary_lab(), "vm2", "10.0.0.5", 80)
    assert t.verdict == "Connected"
    deliver = t.to_dict()["steps"][-1]
    assert (deliver["virtual_machine"], deliver["ip"], deliver["ip_configuration"]) == ("rg1vm1", "10.0.0.5",
                                                                                        "ipconfig2")


def test_the_nsg_is_evaluated_with_the_secondary_address():
    topo = secondary_lab()
    to_primary = trace(topo, "vm2", "10.0.0.4", 80)
    assert to_primary.verdict == "TimedOut" and to_primary.steps[-1].detail.rule == "deny-web"
    nsg = [s.detail for s in trace(topo, "vm2", "10.0.0.5", 80).steps if s.kind == "NetworkSecurityGroup"]
    assert [(d.direction, d.rule) for d in nsg if d.direction == "Inbound"] == [("Inbound", "web-on-secondary")]


def test_the_vm_sends_from_its_primary_address():
    t = trace(secondary_lab(), "rg1vm1", "vm2", 22)
    assert t.flow.source_ip == "10.0.0.4" and t.source_ip_seen == "10.0.0.4"


def test_a_route_via_the_appliance_to_its_own_secondary_address_is_delivered_without_forwarding():
    doc = lab({"secondary_ip_addresses": ["10.0.0.5"]})
    doc["route_tables"] = [{"name": "rt", "routes": [{"name": "to-sec", "address_prefix": "10.0.0.5/32",
                                                      "next_hop_type": "VirtualAppliance",
                                                      "next_hop_ip_address": "10.0.0.4"}]}]
    doc["virtual_networks"][0]["subnets"][0]["route_table"] = "rt"
    t = trace(build(doc), "vm2", "10.0.0.5", 80)
    assert t.verdict == "Connected" and t.steps[-1].detail.ip_configuration == "ipconfig2"


def test_the_matrix_lists_the_vm_once():
    net = LabView(secondary_lab())
    assert [e.name for e in net.endpoints() if e.kind == "vm"] == ["rg1vm1", "vm2"]


def test_check_to_a_secondary_address_from_the_cli(tmp_path):
    home = up_note(tmp_path, lab({"secondary_ip_addresses": ["10.0.0.5"]}))
    res = cli(home, "check", "vm2", "10.0.0.5", "--port", "80", "-o", "json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["verdict"] == "Connected" and out["steps"][-1]["ip_configuration"] == "ipconfig2"
    text = cli(home, "check", "vm2", "10.0.0.5", "--port", "80")
    assert "ipconfig2" in text.output


def test_a_secondary_address_is_not_available_to_another_nic():
    from ipaddress import IPv4Address

    from vnetlab.engine.addressing import address_availability
    available, suggestions = address_availability(secondary_lab(), "vnet1", IPv4Address("10.0.0.5"))
    assert not available and IPv4Address("10.0.0.5") not in suggestions and IPv4Address("10.0.0.4") not in suggestions


def test_the_picture_shows_every_address_of_the_nic():
    from vnetlab import graph
    dot = graph.to_dot(graph.picture(LabView(secondary_lab())))
    assert "rg1vm1VMNic 10.0.0.4, 10.0.0.5" in dot
