"""The service layer's verbs (vnetlab.lab.Lab) and what `vnetlab up` refuses before it changes anything."""

from __future__ import annotations

import copy
import subprocess

import pytest
import yaml
from conftest import NOTE, cli, up_note
from netns_support import NETNS_MARKS

from vnetlab.lab import Lab


def _write(tmp_path, doc, name="other.yaml"):
    f = tmp_path / name
    f.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return f


def _stored(home) -> tuple[dict | None, str]:
    lab = Lab.open(home)
    return lab.store.load(), lab.backend_name


# -- up: refused files ------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["", "# nothing here\n", "{}\n", "location: westeurope\nvirtual_networks: []\n"])
def test_up_refuses_an_empty_or_nameless_file_and_keeps_the_lab(tmp_path, text):
    home = up_note(tmp_path)
    before = _stored(home)
    res = cli(home, "up", str(_write(tmp_path, text)))
    assert res.exit_code == 2 and "InvalidTemplate" in res.output
    assert _stored(home) == before


def test_up_with_another_lab_name_is_refused_unless_replace(tmp_path):
    home = up_note(tmp_path)
    before = _stored(home)
    other = _write(tmp_path, {**copy.deepcopy(NOTE), "name": "other"})
    res = cli(home, "up", str(other))
    assert res.exit_code == 2 and "LabNameMismatch" in res.output
    assert "--replace" in res.output and "vnetlab down" in res.output
    assert _stored(home) == before
    assert cli(home, "up", str(other), "--replace").exit_code == 0
    assert Lab.open(home).topology().name == "other"


def test_up_of_the_same_lab_name_in_another_case_reconciles(tmp_path):
    home = up_note(tmp_path)
    assert cli(home, "up", str(_write(tmp_path, {**copy.deepcopy(NOTE), "name": "NOTE"}))).exit_code == 0


def test_a_refused_up_with_a_backend_keeps_the_stored_backend(tmp_path):
    """Refused for what the file says (a subnet outside its VNet), with a backend switch asked:
    nothing changes, and the next check still answers."""
    home = up_note(tmp_path)
    bad = copy.deepcopy(NOTE)
    bad["virtual_networks"][0]["subnets"][0]["address_prefix"] = "10.9.0.0/26"
    before = _stored(home)
    res = cli(home, "up", str(_write(tmp_path, bad)), "--backend", "netns")
    assert res.exit_code == 2
    assert _stored(home) == before and before[1] == "sim"
    assert cli(home, "check", "app1", "rg1vm1", "--port", "80").exit_code == 0


def test_up_with_an_unknown_backend_changes_nothing(tmp_path):
    home = up_note(tmp_path)
    before = _stored(home)
    res = cli(home, "up", str(_write(tmp_path, NOTE)), "--backend", "docker")
    assert res.exit_code == 2 and "InvalidBackend" in res.output
    assert _stored(home) == before


# -- switching backends -----------------------------------------------------------------------------

def _netns_list() -> set[str]:
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    return {line.split()[0] for line in out.splitlines() if line.strip()}


def netns(test):
    for mark in NETNS_MARKS:
        test = mark(test)
    return test


@netns
def test_up_with_backend_sim_tears_the_emulation_down_first(tmp_path):
    f = _write(tmp_path, NOTE, "note.yaml")
    home = tmp_path / "lab"
    try:
        assert cli(home, "up", str(f), "--backend", "netns").exit_code == 0
        lab = Lab.open(home)
        built = {name for kind, name, _ in lab.store.records() if kind == "netns"}
        assert built and built <= _netns_list()
        assert cli(home, "up", str(f), "--backend", "sim").exit_code == 0
        assert lab.backend_name == "sim"
        assert not built & _netns_list()
        assert not lab.store.records("netns") and not lab.store.records("process")
        assert cli(home, "check", "app1", "rg1vm1", "--port", "80").exit_code == 0
    finally:
        cli(home, "down")


@netns
def test_back_and_forth_between_backends_with_one_file_rebuilds_the_emulation(tmp_path):
    f = _write(tmp_path, NOTE, "note.yaml")
    home = tmp_path / "lab"
    try:
        for backend in ("netns", "sim", "netns"):
            assert cli(home, "up", str(f), "--backend", backend).exit_code == 0
        built = {name for kind, name, _ in Lab.open(home).store.records() if kind == "netns"}
        assert built and built <= _netns_list()
        assert cli(home, "check", "app1", "rg1vm1", "--port", "80").exit_code == 0  # observed on the kernel
    finally:
        cli(home, "down")


@netns
def test_a_refused_up_on_a_running_emulation_keeps_it(tmp_path):
    f = _write(tmp_path, NOTE, "note.yaml")
    home = tmp_path / "lab"
    try:
        assert cli(home, "up", str(f), "--backend", "netns").exit_code == 0
        before = _stored(home)
        bad = copy.deepcopy(NOTE)
        bad["virtual_networks"][0]["subnets"][0]["address_prefix"] = "10.9.0.0/26"
        assert cli(home, "up", str(_write(tmp_path, bad)), "--backend", "sim").exit_code == 2
        assert _stored(home) == before and before[1] == "netns"
        assert cli(home, "check", "app1", "rg1vm1", "--port", "80").exit_code == 0
    finally:
        cli(home, "down")


# -- verbs ------------------------------------------------------------------------------------------

def test_a_moved_dynamic_nic_is_readdressed_in_its_new_subnet(tmp_path):
    doc = copy.deepcopy(NOTE)
    doc["virtual_networks"][0]["subnets"].append({"name": "other", "address_prefix": "10.0.0.64/26"})
    doc["virtual_machines"][0].pop("private_ip_address")
    lab = Lab.open(up_note(tmp_path, doc))
    assert lab.topology().find("network_interfaces", "rg1vm1VMNic").private_ip_address == "10.0.0.4"

    def move(t):
        t.find("network_interfaces", "rg1vm1VMNic").subnet = "vnet1/other"
    lab.change(move)
    assert lab.topology().find("network_interfaces", "rg1vm1VMNic").private_ip_address == "10.0.0.68"


def test_delete_vnet_leaves_the_remote_peerings_disconnected(tmp_path):
    doc = copy.deepcopy(NOTE)
    doc["virtual_networks"] += [
        {"name": "hub", "address_space": ["10.1.0.0/24"], "peerings": [{"name": "to-spoke", "remote_virtual_network": "spoke"}]},
        {"name": "spoke", "address_space": ["10.2.0.0/24"], "peerings": [{"name": "to-hub", "remote_virtual_network": "hub"}]}]
    lab = Lab.open(up_note(tmp_path, doc))
    lab.delete_vnet("spoke")
    topo = lab.topology()
    assert topo.vnet("spoke") is None
    assert [(p.name, p.peering_state) for p in topo.vnet("hub").peerings] == [("to-spoke", "Disconnected")]


def test_verbs_on_a_missing_web_app_are_not_found_and_change_nothing(tmp_path):
    lab = Lab.open(up_note(tmp_path))
    version = lab.store.version()
    for verb in (lambda: lab.integrate("nope", "vnet1/integration"), lambda: lab.disconnect("nope"),
                 lambda: lab.set_route_all("nope", True), lambda: lab.delete_vnet("nope")):
        with pytest.raises(Exception) as info:
            verb()
        assert info.value.code == "ResourceNotFound"
    assert lab.store.version() == version


# -- one definition each, in the engine -------------------------------------------------------------

def test_every_face_refuses_a_protocol_the_same_way(tmp_path):
    from vnetlab.engine.matrix import parse_flows
    home = up_note(tmp_path)
    lab = Lab.open(home)
    with pytest.raises(Exception) as traced:
        lab.trace("app1", "rg1vm1", 80, "sctp")
    with pytest.raises(Exception) as matrixed:
        parse_flows(["sctp/80"])  # was read as Tcp
    assert traced.value.code == matrixed.value.code == "InvalidProtocol"
    res = cli(home, "check", "app1", "rg1vm1", "--protocol", "sctp")
    assert res.exit_code == 2 and "InvalidProtocol" in res.output
    assert parse_flows(["80", "TCP/443", "udp/53", "icmp"]) == [("Tcp", 80), ("Tcp", 443), ("Udp", 53), ("Icmp", None)]


def test_network_watcher_and_the_trace_meet_the_nsgs_in_one_order(tmp_path):
    """Inbound the subnet's NSG then the NIC's: with both denying, the subnet's rule is the one named."""
    from starlette.testclient import TestClient

    from vnetlab.api import create_app
    from vnetlab.api.discovery import SUBSCRIPTION
    doc = copy.deepcopy(NOTE)
    deny = {"name": "deny80", "priority": 100, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
            "destination_port_range": "80"}
    doc["network_security_groups"] = [{"name": "subnet-nsg", "security_rules": [deny]},
                                      {"name": "nic-nsg", "security_rules": [{**deny, "name": "nic-deny80"}]}]
    doc["virtual_networks"][0]["subnets"][0]["network_security_group"] = "subnet-nsg"
    doc["virtual_machines"][0]["network_security_group"] = "nic-nsg"
    home = up_note(tmp_path, doc)
    step = next(s for s in Lab.open(home).trace("app1", "rg1vm1", 80).to_dict()["steps"]
                if s["kind"] == "NetworkSecurityGroup")
    rg = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1"
    client = TestClient(create_app(home))
    verdict = client.post(f"{rg}/providers/Microsoft.Network/networkWatchers/nw/ipFlowVerify",
                          params={"api-version": "2024-05-01"},
                          json={"targetResourceId": f"{rg}/providers/Microsoft.Compute/virtualMachines/rg1vm1",
                                "direction": "Inbound", "protocol": "TCP", "localIPAddress": "10.0.0.4",
                                "localPort": "80", "remoteIPAddress": "10.0.0.190", "remotePort": "40000"}).json()
    assert (step["nsg"], step["rule"]) == ("subnet-nsg", "deny80")
    assert verdict == {"access": "Deny", "ruleName": "securityRules/deny80"}


def test_a_user_rule_named_like_a_default_rule_is_a_security_rule():
    from vnetlab.engine.security import AddressSet, CompiledNsg
    from vnetlab.model import DEFAULT_SECURITY_RULES, NetworkSecurityGroup
    from vnetlab.model.nsg import is_default_rule
    nsg = NetworkSecurityGroup(name="n", security_rules=[{"name": "DenyAllInbound", "priority": 4000,
                                                          "access": "Deny"}])
    compiled = CompiledNsg(nsg, "Inbound", AddressSet())
    assert [c.default for c in compiled.rules] == [False, True, True, True]
    assert all(is_default_rule(r) for r in DEFAULT_SECURITY_RULES)
