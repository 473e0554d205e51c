"""A trace step reads the same on every face, and an appliance step names both forwarding settings."""

from pathlib import Path

import yaml

from conftest import build
from vnetlab.engine.trace import trace
from vnetlab.graph import step_text
from vnetlab.wording import step_detail

EXAMPLE = Path(__file__).resolve().parents[1] / "examples/issue-example.yaml"


def test_an_appliance_step_names_the_nic_and_the_guest_forwarding_settings():
    doc = yaml.safe_load(EXAMPLE.read_text())
    nva = next(vm for vm in doc["virtual_machines"] if vm["name"] == "nva1")
    nva["guest_ip_forwarding"] = False
    t = trace(build(doc), "rg1vm1", "192.168.1.10", 80)
    assert t.reason == "GuestNotForwarding"
    step = next(s.to_dict() for s in t.steps if s.kind == "VirtualAppliance")
    assert "guest forwarding off" in step_detail(step)
    assert step_text(step).endswith(step_detail(step))
