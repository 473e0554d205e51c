import copy

import pytest
import yaml
from typer.testing import CliRunner

from vnetlab.cli.main import app
from vnetlab.lab import allocate_dynamic_addresses
from vnetlab.model import Topology
from vnetlab.validation import validate

NOTE = {
    "name": "note", "location": "westeurope", "resource_group": "rg1",
    "virtual_networks": [{"name": "vnet1", "address_space": ["10.0.0.0/24"], "subnets": [
        {"name": "default", "address_prefix": "10.0.0.0/26"},
        {"name": "integration", "address_prefix": "10.0.0.128/26", "delegations": ["Microsoft.Web/serverFarms"]}]}],
    "virtual_machines": [{"name": "rg1vm1", "subnet": "vnet1/default", "private_ip_address": "10.0.0.4",
                          "services": [{"port": 80}]}],
    "app_service_plans": [{"name": "plan1", "sku": "P1v3", "os": "linux", "instances": 1}],
    "web_apps": [{"name": "app1", "plan": "plan1", "vnet_integration": "vnet1/integration"}],
}


def build(base=None, **changes) -> Topology:
    doc = copy.deepcopy(base or NOTE)
    doc.update(changes)
    topo = Topology.model_validate(doc)
    allocate_dynamic_addresses(topo, None)
    validate(topo)
    return topo


@pytest.fixture
def note_doc():
    return copy.deepcopy(NOTE)


runner = CliRunner()


def cli(home, *args):
    """The vnetlab CLI on the lab at ``home``."""
    return runner.invoke(app, [*args, "--home", str(home)])


def up_note(tmp_path, doc=None):
    """A lab made with `vnetlab up` from the note's lab (or ``doc``); returns its home."""
    f = tmp_path / "lab.yaml"
    f.write_text(yaml.safe_dump(doc or NOTE))
    home = tmp_path / "lab"
    assert cli(home, "up", str(f)).exit_code == 0
    return home
