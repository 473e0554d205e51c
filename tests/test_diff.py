"""`vnetlab diff`: what a changed lab would do, before it is applied. Resources in ARM what-if's
words, the reachability that changes with both traces' reasons, exit 0 / 1 / 2, and the lab is
never touched."""

import copy
import json

import pytest
import yaml
from conftest import NOTE, build, cli, up_note

from vnetlab.engine.network import LabView
from vnetlab.engine.trace import trace
from vnetlab.engine.whatif import reachability_changes, resource_changes, what_if
from vnetlab.lab import Lab
from vnetlab.model import AzureError, Topology

PORTS = "22,80,443,icmp"


def _write(tmp_path, doc, name="new.yaml"):
    f = tmp_path / name
    f.write_text(yaml.safe_dump(doc))
    return f


def _diff(home, *args):
    result = cli(home, "diff", *args, "-o", "json")
    return result, (json.loads(result.stdout) if result.exit_code in (0, 1) else None)


def _state(home):
    """The stored lab and its version: what must not move when a change is only previewed."""
    lab = Lab.open(home)
    return lab.store.version(), lab.store.load()


def _with_deny_http(doc):
    doc = copy.deepcopy(doc)
    doc["network_security_groups"] = [{"name": "nsg-vm", "security_rules": [
        {"name": "deny-http", "priority": 100, "direction": "Inbound", "access": "Deny", "protocol": "Tcp",
         "source_address_prefix": "*", "destination_port_range": "80"}]}]
    doc["virtual_networks"][0]["subnets"][0]["network_security_group"] = "nsg-vm"
    return doc


def _change(out, source, destination, flow):
    found = [c for c in out["reachability"] if [source, destination] in c["pairs"] and c["flow"] == flow]
    assert len(found) == 1, out["reachability"]
    return found[0]


def _by_name(out):
    return {c["name"]: c for c in out["changes"]}


def test_an_unchanged_file_changes_nothing(tmp_path):
    home = up_note(tmp_path)
    before = _state(home)
    result, out = _diff(home, str(_write(tmp_path, NOTE)), "--ports", PORTS)
    assert result.exit_code == 0, result.output
    assert out["changes"] and {c["change_type"] for c in out["changes"]} == {"NoChange"}
    assert out["reachability"] == [] and out["endpoints_added"] == out["endpoints_removed"] == []
    assert _state(home) == before


def test_a_deny_rule_names_the_rule_that_breaks_the_path(tmp_path):
    home = up_note(tmp_path)
    before = _state(home)
    result, out = _diff(home, str(_write(tmp_path, _with_deny_http(NOTE))), "--ports", PORTS)
    assert result.exit_code == 1, result.output
    changes = _by_name(out)
    assert changes["nsg-vm"]["change_type"] == "Create"
    assert changes["vnet1"]["change_type"] == "Modify"
    assert [(d["path"], d["change_type"], d["after"]) for d in changes["vnet1"]["delta"]] == [
        ("subnets[default].network_security_group", "Create", "nsg-vm")]
    assert changes["app1"]["change_type"] == "NoChange"
    http = _change(out, "app1", "rg1vm1", "80")
    assert (http["before"]["verdict"], http["after"]["verdict"]) == ("Connected", "TimedOut")
    assert http["after"]["cause"] == "NsgDenied by rule deny-http in nsg-vm"
    assert http["text"] == "app1 -> rg1vm1:80 was Connected, becomes TimedOut: NsgDenied by rule deny-http in nsg-vm"
    assert [c["flow"] for c in out["reachability"]] == ["80"]  # 22, 443 and icmp answer as before
    assert _state(home) == before
    table = cli(home, "diff", str(tmp_path / "new.yaml"))
    assert table.exit_code == 1 and "NsgDenied by rule deny-http in nsg-vm" in table.stdout
    assert "Modify" in table.stdout and "subnets[default].network_security_group" in table.stdout


def test_removing_the_delegation_of_an_integrated_subnet_is_refused_as_up_refuses_it(tmp_path):
    home = up_note(tmp_path)
    before = _state(home)
    doc = copy.deepcopy(NOTE)
    doc["virtual_networks"][0]["subnets"][1]["delegations"] = []
    new = _write(tmp_path, doc)
    result = cli(home, "diff", str(new))
    up = cli(tmp_path / "other", "up", str(_write(tmp_path, NOTE, "note.yaml")))
    assert up.exit_code == 0
    refused = cli(tmp_path / "other", "up", str(new))
    assert result.exit_code == refused.exit_code == 2
    assert "SubnetMissingRequiredDelegation" in result.output
    assert result.output.split("(")[1].split(")")[0] == refused.output.split("(")[1].split(")")[0]
    assert _state(home) == before


def test_removing_the_integration_loses_the_path(tmp_path):
    home = up_note(tmp_path)
    before = _state(home)
    doc = copy.deepcopy(NOTE)
    doc["web_apps"][0].pop("vnet_integration")
    result, out = _diff(home, str(_write(tmp_path, doc)), "--ports", PORTS)
    assert result.exit_code == 1, result.output
    app = _by_name(out)["app1"]
    assert app["change_type"] == "Modify"
    assert ("vnet_integration", "Delete") in [(d["path"], d["change_type"]) for d in app["delta"]]
    after = LabView(build(doc))
    for flow in ("80", "icmp"):
        change = _change(out, "app1", "rg1vm1", flow)
        expected = trace(after, "app1", "rg1vm1", 80 if flow == "80" else None, "Tcp" if flow == "80" else "Icmp")
        assert change["before"]["verdict"] == "Connected"
        assert (change["after"]["verdict"], change["after"]["reason"]) == (expected.verdict, expected.reason)
        assert change["after"]["verdict"] != "Connected"
    assert _state(home) == before


def _two_vnets():
    doc = copy.deepcopy(NOTE)
    doc["virtual_networks"][0]["peerings"] = [{"name": "to-vnet2", "remote_virtual_network": "vnet2"}]
    doc["virtual_networks"].append({"name": "vnet2", "address_space": ["10.1.0.0/24"],
                                    "subnets": [{"name": "default", "address_prefix": "10.1.0.0/26"}],
                                    "peerings": [{"name": "to-vnet1", "remote_virtual_network": "vnet1"}]})
    doc["virtual_machines"].append({"name": "vm2", "subnet": "vnet2/default", "services": [{"port": 80}]})
    return doc


def test_removing_a_peering_cuts_both_vnets_apart(tmp_path):
    doc = _two_vnets()
    home = up_note(tmp_path, doc)
    before = _state(home)
    assert cli(home, "check", "app1", "vm2", "--port", "80").exit_code == 0
    cut = copy.deepcopy(doc)
    cut["virtual_networks"][1]["peerings"] = []
    result, out = _diff(home, str(_write(tmp_path, cut)), "--ports", "80")
    assert result.exit_code == 1, result.output
    delta = _by_name(out)["vnet2"]["delta"]
    assert [(d["path"], d["change_type"]) for d in delta] == [("peerings[to-vnet1]", "Delete")]
    after = LabView(build(cut))
    for src, dst in (("app1", "vm2"), ("rg1vm1", "vm2"), ("vm2", "rg1vm1")):
        change = _change(out, src, dst, "80")
        expected = trace(after, src, dst, 80)
        assert change["before"]["verdict"] == "Connected", change
        assert (change["after"]["verdict"], change["after"]["reason"]) == ("TimedOut", expected.reason)
    assert not any(["app1", "rg1vm1"] in c["pairs"] for c in out["reachability"])  # inside vnet1: as before
    assert _state(home) == before


def test_against_compares_two_files_without_a_lab(tmp_path):
    home = tmp_path / "nolab"
    base, new = _write(tmp_path, NOTE, "base.yaml"), _write(tmp_path, _with_deny_http(NOTE))
    result, out = _diff(home, str(new), "--against", str(base), "--ports", "80")
    assert result.exit_code == 1, result.output
    assert _change(out, "app1", "rg1vm1", "80")["after"]["reason"] == "NsgDenied"
    assert not home.exists()
    back, out = _diff(home, str(base), "--against", str(new), "--ports", "80")
    assert back.exit_code == 1
    change = _change(out, "app1", "rg1vm1", "80")
    assert (change["before"]["cause"], change["after"]["verdict"]) == ("NsgDenied by rule deny-http in nsg-vm",
                                                                       "Connected")
    assert _by_name(out)["nsg-vm"]["change_type"] == "Delete"


def test_against_a_lab_directory_compares_the_lab_at_home_with_it(tmp_path):
    home = up_note(tmp_path)
    other = tmp_path / "other"
    assert cli(other, "up", str(_write(tmp_path, _with_deny_http(NOTE), "deny.yaml"))).exit_code == 0
    result, out = _diff(home, "--against", str(other), "--ports", "80")
    assert result.exit_code == 1, result.output
    change = _change(out, "app1", "rg1vm1", "80")
    assert (change["before"]["reason"], change["after"]["verdict"]) == ("NsgDenied", "Connected")


def test_bad_input_is_exit_2_and_changes_nothing(tmp_path):
    home = up_note(tmp_path)
    before = _state(home)
    new = _write(tmp_path, NOTE)
    assert cli(home, "diff", str(new), "--ports", "http").exit_code == 2
    assert cli(home, "diff").exit_code == 2
    assert cli(home, "diff", str(tmp_path / "missing.yaml")).exit_code == 2
    other = copy.deepcopy(NOTE) | {"name": "other"}
    assert "LabNameMismatch" in cli(home, "diff", str(_write(tmp_path, other, "other.yaml"))).output
    assert cli(home, "diff", "--against", str(tmp_path / "nolab")).exit_code == 2
    assert _state(home) == before


def test_a_removed_endpoint_is_listed_and_fails_the_gate(tmp_path):
    home = up_note(tmp_path, _two_vnets())
    doc = _two_vnets()
    doc["virtual_machines"] = doc["virtual_machines"][:1]
    result, out = _diff(home, str(_write(tmp_path, doc)), "--ports", "80")
    assert result.exit_code == 1
    assert out["endpoints_removed"] == ["vm2"] and out["reachability"] == []
    assert _by_name(out)["vm2"]["change_type"] == "Delete"


# -- the engine, without the CLI --------------------------------------------------------------------
def test_one_change_per_class_pair_lists_every_endpoint_pair_it_holds_for():
    doc = copy.deepcopy(NOTE)
    doc["virtual_machines"] += [{"name": f"vm{i}", "subnet": "vnet1/default", "services": [{"port": 80}]}
                                for i in (2, 3)]
    old, new = build(doc), build(_with_deny_http(doc))
    changes, added, removed = reachability_changes(LabView(old), LabView(new), ["80"])
    assert added == removed == []
    from_app = [c for c in changes if c.source == "app1"]
    assert len(from_app) == 1
    assert sorted(d for _, d in from_app[0].pairs) == ["rg1vm1", "vm2", "vm3"]
    every = {(s, d) for c in changes for s, d in c.pairs}
    names = ["app1", "rg1vm1", "vm2", "vm3"]
    for s in names:  # each pair reported equals the full traces in both labs, and none is missed
        for d in names[1:]:
            if s != d:
                differs = trace(LabView(old), s, d, 80).verdict != trace(LabView(new), s, d, 80).verdict
                assert differs == ((s, d) in every), (s, d)


def test_resource_changes_in_arm_what_if_words():
    old = build()
    assert {c.change_type for c in resource_changes(old, build())} == {"NoChange"}
    doc = copy.deepcopy(NOTE)
    doc["app_service_plans"][0]["sku"] = "P2v3"
    doc["virtual_machines"] = []
    changes = {c.name: c for c in resource_changes(old, build(doc))}
    assert changes["rg1vm1"].change_type == changes["rg1vm1VMNic"].change_type == "Delete"
    assert [(d.path, d.change_type, d.before, d.after) for d in changes["plan1"].delta] == [
        ("sku", "Modify", "P1v3", "P2v3")]
    assert all(c.change_type == "Create" for c in resource_changes(None, old))
    assert what_if(old, build(doc), ["80"]).endpoints_removed == ["rg1vm1"]


# -- export: the lab as a topology file, `up` of which gives the same lab ------------------------------
def _round_trip(tmp_path, home, fmt):
    exported = cli(home, "export", "-o", fmt)
    assert exported.exit_code == 0, exported.output
    f = tmp_path / f"export.{fmt}"
    f.write_text(exported.stdout)
    again = tmp_path / f"again-{fmt}"
    assert cli(again, "up", str(f)).exit_code == 0
    assert _state(again)[1] == _state(home)[1]
    assert cli(again, "export", "-o", fmt).stdout == exported.stdout
    version = _state(home)[0]
    assert cli(home, "up", str(f)).exit_code == 0 and _state(home)[0] == version  # up of it changes nothing


def test_export_round_trips_the_examples_and_a_generated_lab(tmp_path):
    import sys
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    from generate import generate_doc
    docs = [yaml.safe_load(p.read_text()) for p in sorted((root / "examples").glob("*.yaml"))]
    docs.append(generate_doc(vnets=3, subnets=3, vms=12, apps=4, rules=6, seed=5))
    for i, doc in enumerate(docs):
        case = tmp_path / str(i)
        case.mkdir()
        home = up_note(case, doc)
        for fmt in ("yaml", "json"):
            _round_trip(case, home, fmt)


def test_export_keeps_what_the_lab_settled(tmp_path):
    """Dynamic addresses are kept. A peering left Disconnected when the remote side's peering went is
    exported as it is; `up` of it on a fresh home creates it, and a new peering is Initiated (Azure never
    creates a Disconnected one): no traffic either way, so `vnetlab diff` finds no path changed."""
    doc = _two_vnets()
    doc["virtual_machines"][1]["subnet"] = "vnet1/default"  # dynamic, beside rg1vm1 (10.0.0.4)
    home = up_note(tmp_path, doc)
    doc["virtual_networks"][1]["peerings"] = []
    assert cli(home, "up", str(_write(tmp_path, doc, "cut.yaml"))).exit_code == 0
    exported = cli(home, "export")
    as_doc = yaml.safe_load(exported.stdout)
    assert as_doc["virtual_networks"][0]["peerings"][0]["peering_state"] == "Disconnected"
    nic = {n["name"]: n for n in as_doc["network_interfaces"]}["vm2VMNic"]
    assert (nic["private_ip_address"], nic["private_ip_allocation_method"]) == ("10.0.0.5", "Dynamic")
    (tmp_path / "fresh").mkdir()
    fresh = up_note(tmp_path / "fresh", as_doc)
    stored = _state(fresh)[1]
    assert stored["virtual_networks"][0]["peerings"][0]["peering_state"] == "Initiated"
    stored["virtual_networks"][0]["peerings"][0]["peering_state"] = "Disconnected"
    assert stored == _state(home)[1]
    result, out = _diff(home, "--against", str(fresh), "--ports", PORTS)
    assert result.exit_code == 0 and out["reachability"] == []
    vnet1 = _by_name(out)["vnet1"]
    assert [(d["path"], d["before"], d["after"]) for d in vnet1["delta"]] == [
        ("peerings[to-vnet2].peering_state", "Initiated", "Disconnected")]


def test_a_peering_to_a_deleted_vnet_is_exported_but_not_created_again(tmp_path):
    """Azure keeps the peering (Disconnected) when its remote VNet goes, but refuses to create one to a
    VNet that does not exist: the export says what the lab holds, and `up` of it elsewhere is refused."""
    doc = _two_vnets()
    doc["virtual_machines"] = doc["virtual_machines"][:1]
    home = up_note(tmp_path, doc)
    assert cli(home, "network", "vnet", "delete", "--name", "vnet2").exit_code == 0
    exported = cli(home, "export")
    assert yaml.safe_load(exported.stdout)["virtual_networks"][0]["peerings"][0]["peering_state"] == "Disconnected"
    f = tmp_path / "export.yaml"
    f.write_text(exported.stdout)
    version = _state(home)[0]
    assert cli(home, "up", str(f)).exit_code == 0 and _state(home)[0] == version
    refused = cli(tmp_path / "fresh", "up", str(f))
    assert refused.exit_code == 2 and "ReferencedResourceNotProvisioned" in refused.output


def test_export_without_a_lab_is_exit_2_and_creates_nothing(tmp_path):
    result = cli(tmp_path / "nolab", "export")
    assert result.exit_code == 2 and "LabNotFound" in result.output
    assert not (tmp_path / "nolab").exists()


def test_lab_preview_checks_like_up_and_writes_nothing(tmp_path):
    home = up_note(tmp_path)
    lab = Lab.open(home)
    before = _state(home)
    doc = copy.deepcopy(NOTE)
    doc["virtual_machines"].append({"name": "vm2", "subnet": "vnet1/default"})
    previewed = lab.preview(Topology.model_validate(doc))
    assert previewed.find("network_interfaces", "vm2VMNic").private_ip_address == "10.0.0.5"
    doc["virtual_networks"][0]["subnets"][1]["delegations"] = []
    with pytest.raises(AzureError) as refused:
        lab.preview(Topology.model_validate(doc))
    assert refused.value.code == "SubnetMissingRequiredDelegation"
    with pytest.raises(AzureError) as other:
        lab.preview(Topology.model_validate(copy.deepcopy(NOTE) | {"name": "other"}))
    assert other.value.code == "LabNameMismatch"
    assert _state(home) == before
