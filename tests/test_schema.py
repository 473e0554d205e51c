"""`vnetlab schema` describes every form `up` accepts: the shipped examples and the README's
topology snippets validate against it, and each also loads as a lab."""

import json
import re
from pathlib import Path

import pytest
import yaml

from vnetlab.topology import parse, schema

jsonschema = pytest.importorskip("jsonschema")  # the dev extra (make test) installs it

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


def readme_snippets() -> list[tuple[str, dict]]:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    return [(f"README.md#yaml{i}", yaml.safe_load(b)) for i, b in enumerate(blocks)]


def validator() -> jsonschema.Draft202012Validator:
    doc = json.loads(schema())
    jsonschema.Draft202012Validator.check_schema(doc)
    return jsonschema.Draft202012Validator(doc)


CASES = [(p.name, yaml.safe_load(p.read_text())) for p in EXAMPLES] + readme_snippets()


def test_there_is_something_to_check():
    assert len(EXAMPLES) >= 2 and readme_snippets()


@pytest.mark.parametrize("name,doc", CASES, ids=[c[0] for c in CASES])
def test_shipped_topologies_validate_against_the_schema(name, doc):
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(doc)]
    assert not errors, errors
    parse(doc)  # and `up` accepts it


def test_the_forms_up_accepts_validate():
    doc = {"name": "forms", "virtual_networks": [
        {"name": "v", "address_space": "10.0.0.0/24", "subnets": [
            {"name": "a", "address_prefix": "10.0.0.0/26",
             "delegations": ["Microsoft.Web/serverFarms"]},
            {"name": "b", "address_prefix": "10.0.0.64/26",
             "delegations": [{"name": "d", "service_name": "Microsoft.Web/serverFarms"}]}]}],
        "network_security_groups": [{"name": "n", "security_rules": [
            {"name": "r", "priority": 100, "direction": "inbound", "access": "deny", "protocol": "tcp",
             "destination_port_range": 443, "source_address_prefixes": "10.0.0.0/8",
             "destination_port_ranges": [80, "8000-8080"]}]}],
        "route_tables": [{"name": "t", "routes": [{"name": "x", "address_prefix": "0.0.0.0/0",
                                                   "next_hop_type": "virtualappliance",
                                                   "next_hop_ip_address": "10.0.0.4"}]}],
        "network_interfaces": [{"name": "nic1", "subnet": "v/b"}],
        "virtual_machines": [{"name": "vm1", "subnet": "v/b", "services": [{"port": 80, "protocol": "udp"}]},
                             {"name": "vm2", "network_interface": "nic1"}],
        "app_service_plans": [{"name": "p", "os": "Linux"}],
        "web_apps": [{"name": "w", "plan": "p", "app_settings": {"WEBSITE_VNET_ROUTE_ALL": 1}}]}
    parse(doc)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator().iter_errors(doc)]
    assert not errors, errors


@pytest.mark.parametrize("bad", [
    {"virtual_networks": [{"name": "v", "address_space": ["10.0.0.0/24"], "subnetz": []}]},
    {"virtual_machines": [{"name": "vm"}]},                   # neither a NIC nor a subnet
    {"route_tables": [{"name": "t", "routes": [{"name": "x", "address_prefix": "0.0.0.0/0",
                                                "next_hop_type": "Elsewhere"}]}]},
])
def test_the_schema_still_refuses_what_up_refuses(bad):
    assert list(validator().iter_errors(bad))
