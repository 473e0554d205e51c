"""A lab read back from the store: built without validating again only when this code validated and
stamped it (model.stored), and then equal to what validating it gives; anything else is validated."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from generate_large import generate_doc as large_doc  # noqa: E402

from vnetlab.lab import Lab, read_stored  # noqa: E402
from vnetlab.model import AzureError, Topology  # noqa: E402
from vnetlab.model.stored import Untrusted, construct, model_stamp  # noqa: E402
from vnetlab.store import STAMP_KEY  # noqa: E402
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
    text, stamp = lab.store.load_stamped()
    assert stamp == model_stamp() is not None
    built, validated = construct(Topology, json.loads(text)), parse(json.loads(text))
    assert built == validated and built.model_dump_json() == validated.model_dump_json() == text
    assert built.network_interfaces[0].model_fields_set == validated.network_interfaces[0].model_fields_set
    assert lab.topology() == validated
    built.network_interfaces[0].private_ip_address = "10.9.9.9"  # a copy of its own, assignable
    assert "private_ip_address" in built.network_interfaces[0].model_fields_set and lab.topology() == validated


def _raw_rule(direction: str) -> dict:
    return {"name": "r1", "priority": 100, "direction": direction, "access": "Allow", "protocol": "tcp",
            "destination_port_range": 80}


def _store_raw(lab: Lab, rule: dict, stamp: str | None) -> None:
    doc = json.loads(lab.store.load_json())
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
        tx.save(json.loads(tx.load_json()))  # a plain dict saved: no stamp
    assert lab.store.load_stamped()[1] is None


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
        construct(Topology, {**json.loads(lab.store.load_json()), "colour": "red"})


def test_down_forgets_the_stamp(tmp_path):
    lab = _stored_lab(tmp_path, load(EXAMPLES[0]))
    lab.down()
    with lab.store.write() as tx:
        assert tx.conn.execute("SELECT value FROM meta WHERE key = ?", (STAMP_KEY,)).fetchone() is None
    assert read_stored(lab.store.load_json() or json.dumps({"name": "x"}), None).name == "x"


def test_up_of_the_same_file_stamps_a_lab_saved_by_older_models(tmp_path):
    """After an upgrade the stored lab is validated on each read until `up` of its file stamps it
    again; the lab does not change (same version, same document)."""
    lab = _stored_lab(tmp_path, load(EXAMPLES[0]))
    version, text = lab.store.version(), lab.store.load_json()
    older = json.loads(text)
    del older["network_security_groups"]  # a kind these models added since: its default when validated
    with lab.store.write() as tx:
        tx.save_json(json.dumps(older), "older models")
    version = lab.store.version()
    assert lab.topology() == parse(json.loads(text))
    lab.up(load(EXAMPLES[0]))
    assert lab.store.load_stamped() == (text, model_stamp()) and lab.store.version() == version
