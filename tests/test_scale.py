"""Large labs stay correct where they are made fast: the YAML loader's shortcut, the name
indexes, and dynamic addressing in one pass. (Their speed is measured in benchmarks/scale.py.)"""

import sys
from pathlib import Path

import pytest
import yaml

import vnetlab.lab as lab_module
from vnetlab.lab import Lab, allocate_dynamic_addresses
from vnetlab.model import AzureError, Topology
from vnetlab.model.network import NetworkInterface
from vnetlab.model.nsg import NetworkSecurityGroup
from vnetlab.topology import load, load_yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from generate_large import generate_doc, write  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

YAML_CASES = [
    "", "a: 1", "- 1\n- 2", "x", "a: {b: [1, {c: null}]}", "a: 1\na: 2",
    "a: 0x1f\nb: 1_000\nc: 1:20\nd: 2024-01-01\ne: yes\nf: ~\ng: '1'\nh: .inf\ni: ! 5\nj: \"3\"\nk: 0o17\nl: -.5",
    "a: &x [1, 2]\nb: *x", "a: !!str 1", "<<: {a: 1}", "a: {<<: {b: 1}, c: 2}", "'<<': 1",
    "--- a\n--- b", "? [1]\n: 2", "[a, b]: 1", "a: [", "a: b: c", "a:\n  - b\n  -c: d", "j: =",
]


def _outcome(fn, text):
    try:
        return "ok", fn(text)
    except yaml.YAMLError as exc:
        return "error", type(exc).__name__, str(exc)


@pytest.mark.parametrize("text", YAML_CASES)
def test_load_yaml_answers_as_safe_load(text):
    assert _outcome(load_yaml, text) == _outcome(yaml.safe_load, text)


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_load_yaml_reads_the_examples_as_safe_load(path):
    assert load_yaml(path.read_text()) == yaml.safe_load(path.read_text())


def test_generated_large_lab_file_loads_as_safe_load(tmp_path):
    path = tmp_path / "lab.yaml"
    write(path, vnets=3, subnets=3, rules=5, vms=12, apps=4)
    assert load_yaml(path.read_text()) == yaml.safe_load(path.read_text())
    topo = load(path)
    assert len(topo.network_security_groups) == 9 and len(topo.virtual_machines) == 12
    assert [p.remote_virtual_network for p in topo.vnet("v1").peerings] == ["v0", "v2"]


def test_find_follows_appends_removals_and_replacements():
    topo = Topology.model_validate(generate_doc(vnets=2, subnets=2, rules=1, vms=4, apps=2))
    assert topo.find("network_security_groups", "NSG-V1-S0").name == "nsg-v1-s0"
    assert topo.find("network_security_groups", "nope") is None
    topo.network_security_groups.append(NetworkSecurityGroup(name="late"))
    assert topo.find("network_security_groups", "late") is topo.network_security_groups[-1]
    removed = topo.network_security_groups.pop(0)
    assert topo.find("network_security_groups", removed.name) is None
    assert topo.find("network_security_groups", "nsg-v0-s1") is topo.network_security_groups[0]
    topo.network_security_groups[0] = NetworkSecurityGroup(name="swapped")
    assert topo.find("network_security_groups", "nsg-v0-s1") is None
    assert topo.find("network_security_groups", "swapped") is topo.network_security_groups[0]
    topo.network_security_groups = [NetworkSecurityGroup(name="fresh")]
    assert topo.find("network_security_groups", "late") is None
    assert topo.find("network_security_groups", "fresh").name == "fresh"


def test_vm_of_nic_follows_a_vm_moved_to_another_nic():
    topo = Topology.model_validate(generate_doc(vnets=1, subnets=2, rules=1, vms=2, apps=0))
    vm = topo.vm_of_nic("vm0VMNic")
    assert vm.name == "vm0"
    assert topo.vm_of_nic("spare") is None
    topo.network_interfaces.append(NetworkInterface(name="spare", subnet="v0/s0"))
    vm.network_interface = "spare"
    assert topo.vm_of_nic("spare") is vm
    assert topo.vm_of_nic("vm0VMNic") is None


def test_indexes_do_not_change_equality():
    a = Topology.model_validate(generate_doc(vnets=1, subnets=2, rules=1, vms=2, apps=0))
    b = Topology.model_validate(generate_doc(vnets=1, subnets=2, rules=1, vms=2, apps=0))
    a.find("virtual_networks", "v0")
    assert a == b


def test_dynamic_addresses_in_one_pass_are_the_lowest_free_per_vnet():
    doc = generate_doc(vnets=2, subnets=3, rules=1, vms=12, apps=0)
    doc["virtual_machines"][0]["private_ip_address"] = "10.0.0.5"  # static, in the middle of the dynamic ones
    topo = Topology.model_validate(doc)
    allocate_dynamic_addresses(topo, None)
    by_subnet: dict[str, list[str]] = {}
    for nic in topo.network_interfaces:
        by_subnet.setdefault(nic.subnet, []).append(nic.private_ip_address)
    assert by_subnet["v0/s0"] == ["10.0.0.5", "10.0.0.4", "10.0.0.6"]
    assert by_subnet["v1/s1"] == ["10.1.1.4", "10.1.1.5", "10.1.1.6"]


def test_up_of_a_generated_lab_twice_changes_nothing_and_checks_nothing_again(tmp_path, monkeypatch):
    path = tmp_path / "lab.yaml"
    write(path, vnets=3, subnets=3, rules=5, vms=12, apps=4)
    lab = Lab.open(tmp_path / "home")
    first = lab.up(load(path))
    version = lab.store.version()
    checks = []
    monkeypatch.setattr(lab_module, "validate", lambda new, old=None: checks.append(new))
    assert lab.up(load(path)) == first and lab.store.version() == version
    assert lab.topology() == first and checks == []


def test_up_of_a_changed_file_is_checked_against_the_running_lab(tmp_path):
    doc = generate_doc(vnets=2, subnets=2, rules=1, vms=4, apps=0)
    lab = Lab.open(tmp_path / "home")
    first = lab.up(Topology.model_validate(doc))
    doc["virtual_machines"].append({"name": "late", "subnet": "v0/s0"})
    second = lab.up(Topology.model_validate(doc))
    assert [n.private_ip_address for n in second.network_interfaces][:4] == \
        [n.private_ip_address for n in first.network_interfaces]
    assert second.find("network_interfaces", "lateVMNic").private_ip_address == "10.0.0.6"
    del doc["virtual_networks"][0]["subnets"][0]  # v0/s0 holds NICs: Azure refuses to delete it
    with pytest.raises(AzureError, match="InUseSubnetCannotBeDeleted|in use"):
        lab.up(Topology.model_validate(doc))
    assert lab.topology() == second
