import pytest
import yaml
from pydantic import ValidationError

from vnetlab.model import DEFAULT_SECURITY_RULES, Topology
from vnetlab.model.ids import parse_id

EXAMPLE = "examples/issue-example.yaml"


def load(path=EXAMPLE):
    with open(path) as f:
        return Topology.model_validate(yaml.safe_load(f))


def test_inline_vm_nic_is_expanded_as_arm_holds_it():
    topo = load()
    nic = topo.find("network_interfaces", "rg1vm1VMNic")
    assert nic.subnet == "vnet1/default" and nic.private_ip_allocation_method == "Static"
    assert topo.find("virtual_machines", "RG1VM1").network_interface == "rg1vm1VMNic"
    assert topo.find("network_interfaces", "nva1VMNic").private_ip_allocation_method == "Dynamic"


def test_default_rules_have_azure_names_and_priorities():
    names = {(r.direction, r.name, r.priority) for r in DEFAULT_SECURITY_RULES}
    assert ("Inbound", "AllowVNetInBound", 65000) in names
    assert ("Outbound", "AllowVnetOutBound", 65000) in names
    assert ("Inbound", "DenyAllInbound", 65500) in names
    assert ("Outbound", "DenyAllOutBound", 65500) in names


def test_ids_round_trip():
    topo = load()
    rid = topo.subnet_id("vnet1/integration")
    parsed = parse_id(rid)
    assert parsed.types == ("virtualNetworks", "subnets") and parsed.names == ("vnet1", "integration")


def test_unknown_key_is_rejected():
    with pytest.raises(ValidationError):
        Topology.model_validate({"virtual_networks": [{"name": "v", "address_space": ["10.0.0.0/16"], "bogus": 1}]})
