"""A lab read back from the store: built without validating again only when this code validated and
stamped it (model.stored), and then equal to what validating it gives; anything else is validated."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from generate_large import generate_doc as large_doc  # noqa: E402

from vnetlab.engine.security import may_match  # noqa: E402
from vnetlab.lab import Lab, read_stored, stored_texts  # noqa: E402
from vnetlab.model import AzureError, Topology  # noqa: E402
from vnetlab.model.stored import Untrusted, construct, model_stamp  # noqa: E402
from vnetlab.store import STAMP_KEY, StoredLab  # noqa: E402
from vnetlab.topology import load, parse  # noqa: E402

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.yaml"))


def _stored_lab(tmp_path, desired: Topology) -> Lab:
    lab = Lab.open(tmp_path / "lab")
    lab.up(desired, backend="sim")
    return lab


@pytest.mark.parametrize("path", EXAMPLES + ["large"], ids=lambda p: getattr(p, "name", p))
def test_a_stamped_lab_reads_back_as_validation_reads_it(tmp_path, path):
    desired = parse(large_doc(vnets=3, subnets=4, rules=30, vms=20, apps=4)) if path == "large" else load(path)
    lab = _stored_lab(tmp_path, desired)
    stored = lab.store.load_stored()
    assert stored.stamp == model_stamp() is not None
    built, validated = construct(Topology, stored.doc()), parse(stored.doc())
    assert built == validated and built.model_dump_json() == validated.model_dump_json()
    assert stored_texts(built) == (stored.core, stored.rules) and stored.doc() == json.loads(built.model_dump_json())
    assert built.network_interfaces[0].model_fields_set == validated.network_interfaces[0].model_fields_set
    assert lab.topology() == validated
    built.network_interfaces[0].private_ip_address = "10.9.9.9"  # a copy of its own, assignable
    assert "private_ip_address" in built.network_interfaces[0].model_fields_set and lab.topology() == validated


def _raw_rule(direction: str) -> dict:
    return {"name": "r1", "priority": 100, "direction": direction, "access": "Allow", "protocol": "tcp",
            "destination_port_range": 80}


def _store_raw(lab: Lab, rule: dict, stamp: str | None) -> None:
    doc = lab.store.load()
    doc["network_security_groups"] = [{"name": "nsg1", "security_rules": [rule]}]
    with lab.store.write() as tx:
        tx.save_json(json.dumps(doc), stamp)


def test_a_document_without_this_codes_stamp_is_validated(tmp_path):
    lab = _stored_lab(tmp_path, load(EXAMPLES[0]))
    for stamp in (None, "another version of the models"):
        _store_raw(lab, {**_raw_rule("outbound"), **{k: v for k, v in _raw_rule("x").items() if k != "direction"}},
                   stamp)
        rule = lab.topology().network_security_groups[0].security_rules[0]
        assert (rule.direction, rule.protocol, rule.destination_port_range) == ("Outbound", "Tcp", "80")
    with lab.store.write() as tx:
        tx.save(tx.load())  # a plain dict saved: no stamp
    assert lab.store.load_stored().stamp is None


def test_a_stamped_document_in_another_shape_is_validated(tmp_path):
    """Stamped but not this code's dump (a rule with keys missing, an unknown key): validated, so it
    gets its defaults or pydantic's refusal, never a half-built model."""
    lab = _stored_lab(tmp_path, load(EXAMPLES[0]))
    _store_raw(lab, _raw_rule("Inbound"), model_stamp())
    rule = lab.topology().network_security_groups[0].security_rules[0]
    assert (rule.protocol, rule.destination_port_range, rule.source_port_range) == ("Tcp", "80", None)
    _store_raw(lab, {**_raw_rule("Inbound"), "colour": "red"}, model_stamp())
    with pytest.raises(AzureError, match="colour"):
        lab.topology()
    with pytest.raises(Untrusted):
        construct(Topology, {**lab.store.load(), "colour": "red"})


def test_down_forgets_the_stamp(tmp_path):
    lab = _stored_lab(tmp_path, load(EXAMPLES[0]))
    lab.down()
    with lab.store.write() as tx:
        assert tx.conn.execute("SELECT value FROM meta WHERE key = ?", (STAMP_KEY,)).fetchone() is None
    assert lab.store.load_stored() is None and not lab.exists()
    assert read_stored(StoredLab(json.dumps({"name": "x"}), {}, None)).name == "x"


def test_up_of_the_same_file_stamps_a_lab_saved_by_older_models(tmp_path):
    """After an upgrade the stored lab is validated on each read until `up` of its file stamps it
    again; the lab does not change (same version, same document)."""
    lab = _stored_lab(tmp_path, load(EXAMPLES[0]))
    version, doc = lab.store.version(), lab.store.load()
    older = json.loads(json.dumps(doc))
    del older["network_security_groups"]  # a kind these models added since: its default when validated
    with lab.store.write() as tx:
        tx.save_json(json.dumps(older), "older models")
    version = lab.store.version()
    assert lab.topology() == parse(doc)
    lab.up(load(EXAMPLES[0]))
    stored = lab.store.load_stored()
    assert (stored.doc(), stored.stamp) == (doc, model_stamp()) and lab.store.version() == version


def test_the_store_keeps_each_nsgs_rules_apart_with_their_cover(tmp_path):
    desired = parse(large_doc(vnets=3, subnets=4, rules=30, vms=20, apps=4))
    lab = _stored_lab(tmp_path, desired)
    stored = lab.store.load_stored()
    core = json.loads(stored.core)
    with_rules = [i for i, nsg in enumerate(desired.network_security_groups) if nsg.security_rules]
    assert with_rules and sorted(stored.rules) == with_rules
    assert all(not nsg["security_rules"] for nsg in core["network_security_groups"])
    assert stored.doc() == json.loads(lab.topology().model_dump_json())
    with lab.store.write() as tx:
        covers = dict(tx.conn.execute("SELECT nsg, cover FROM nsg_rules"))
    assert sorted(covers) == with_rules and all("ports" in json.loads(c) for c in covers.values())


def test_a_lab_read_for_some_flows_keeps_the_rules_of_the_nsgs_with_one_for_them(tmp_path):
    """``topology_for``: an NSG keeps all its rules when one may match one of the flows, none
    otherwise; everything else is the lab as stored."""
    lab = _stored_lab(tmp_path, parse(large_doc(vnets=3, subnets=4, rules=30, vms=20, apps=4)))
    full = lab.topology()
    some_port = int(full.network_security_groups[0].security_rules[0].destination_ports()[0].split("-")[0])
    counts = []
    for flows in ([("Tcp", 80)], [("Tcp", some_port), ("Icmp", None)], [("Udp", 53)]):
        read = lab.topology_for(flows)
        kept = [bool(nsg.security_rules) for nsg in read.network_security_groups]
        assert kept == [any(may_match(r, p, n) for r in nsg.security_rules for p, n in flows)
                        for nsg in full.network_security_groups], flows
        assert all(nsg == whole for nsg, whole, keep in zip(read.network_security_groups,
                                                             full.network_security_groups, kept, strict=True) if keep)
        assert read.model_copy(update={"network_security_groups": []}) == \
            full.model_copy(update={"network_security_groups": []})
        counts.append(sum(kept))
    assert 0 < counts[1] < len(full.network_security_groups)  # some_port's NSG at least, not every one


def test_covers_worked_out_in_a_worker_are_those_one_process_works_out(monkeypatch):
    import vnetlab.lab as lab_module
    from vnetlab.lab import stored_form
    topo = parse(large_doc(vnets=2, subnets=6, rules=40, vms=10, apps=2))
    monkeypatch.setenv("VNETLAB_WORKERS", "1")
    alone = stored_form(topo)
    monkeypatch.setenv("VNETLAB_WORKERS", "2")
    monkeypatch.setattr(lab_module, "_PARALLEL_COVERS", 10)
    assert stored_form(topo) == alone and len(alone[1]) == len(topo.network_security_groups)
