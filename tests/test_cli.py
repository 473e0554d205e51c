"""The CLI end to end on the sim backend: each command, its JSON, its exit status."""

import json

import pytest
from conftest import cli, runner, up_note

from vnetlab.cli.main import app
from vnetlab.engine.network import LabView
from vnetlab.lab import Lab

@pytest.fixture
def home(tmp_path):
    return up_note(tmp_path)


def test_up_twice_changes_nothing(home, tmp_path):
    again = cli(home, "up", str(tmp_path / "lab.yaml"), "-o", "json")
    assert again.exit_code == 0 and json.loads(again.output)["changed"] is False


def test_issue_example_loads(tmp_path):
    res = cli(tmp_path / "l", "up", "examples/issue-example.yaml", "-o", "json")
    assert res.exit_code == 0, res.output
    vms = json.loads(cli(tmp_path / "l", "show", "nva1VMNic", "-o", "json").output)
    assert vms[0]["properties"]["private_ip_address"] == "10.1.0.4"  # dynamic: lowest free from .4


def test_show_gives_ids_and_derived_properties(home):
    items = json.loads(cli(home, "show", "-o", "json").output)
    by_name = {i["name"]: i for i in items}
    assert by_name["vnet1"]["id"].endswith("/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/vnet1")
    integration = by_name["vnet1"]["properties"]["subnets"][1]
    assert integration["service_association_links"][0].endswith("/serviceAssociationLinks/AppServiceLink")
    assert by_name["app1"]["properties"]["integration_ip_addresses"] == ["10.0.0.190"]


def test_check_exit_status_and_json(home):
    ok = cli(home, "check", "app1", "rg1vm1", "--port", "80", "-o", "json")
    assert ok.exit_code == 0
    body = json.loads(ok.output)
    assert {"verdict", "reason", "source_ip_seen", "steps"} <= body.keys()
    assert body["verdict"] == "Connected" and body["source_ip_seen"] == "10.0.0.190"
    refused = cli(home, "check", "rg1vm1", "10.0.0.190", "--port", "443")
    assert refused.exit_code == 1 and "Refused" in refused.output
    assert cli(home, "check", "nope", "rg1vm1").exit_code == 2
    assert cli(home, "check", "app1", "rg1vm1", "--protocol", "Gre").exit_code == 2


def test_routes_for_an_app_is_route_n_and_for_a_vm_the_effective_routes(home):
    topo = Lab.open(home).topology()
    res = cli(home, "routes", "app1")
    assert res.output == LabView(topo).sandbox(topo.web_apps[0]).route_n()
    vm = json.loads(cli(home, "routes", "rg1vm1", "-o", "json").output)
    assert {"source": "Default", "state": "Active", "address_prefix": "10.0.0.0/24",
            "next_hop_type": "VnetLocal"} in vm["value"]


def test_matrix(home):
    res = json.loads(cli(home, "matrix", "--ports", "80,443,icmp", "-o", "json", "--expand").output)
    pairs = {(p["source"], p["destination"]): p["verdicts"] for p in res["pairs"]}
    assert pairs[("app1", "rg1vm1")] == {"80": "Connected", "443": "Refused", "icmp": "Connected"}
    assert pairs[("rg1vm1", "app1")] == {"80": "Refused", "443": "Refused", "icmp": "TimedOut"}


def test_webapp_commands_like_az(home):
    listed = json.loads(cli(home, "webapp", "vnet-integration", "list", "--name", "app1", "-o", "json").output)
    assert listed[0]["vnetResourceId"].endswith("/virtualNetworks/vnet1/subnets/integration")
    assert cli(home, "webapp", "config", "set", "--name", "app1", "--vnet-route-all-enabled", "true").exit_code == 0
    routes = cli(home, "routes", "app1").output.splitlines()
    assert next(r for r in routes if r.startswith("0.0.0.0")).split()[-1].startswith("vnet")
    assert cli(home, "webapp", "vnet-integration", "remove", "--name", "app1").exit_code == 0
    assert json.loads(cli(home, "webapp", "vnet-integration", "list", "--name", "app1", "-o", "json").output) == []
    res = cli(home, "check", "app1", "rg1vm1", "--protocol", "icmp", "-o", "json")
    assert json.loads(res.output)["reason"] == "PrivateAddressOnInternet"


def test_schema_is_json_schema():
    doc = json.loads(runner.invoke(app, ["schema"]).output)
    assert "virtual_networks" in doc["properties"]


def test_demo_matches_the_note(tmp_path):
    res = runner.invoke(app, ["demo", "--home", str(tmp_path / "demo"), "-o", "json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["all_match"] is True


def test_demo_private_endpoint_tells_the_key_vault_story_beside_the_docs(tmp_path):
    res = runner.invoke(app, ["demo", "private-endpoint", "--home", str(tmp_path / "demo"), "-o", "json"])
    assert res.exit_code == 0, res.output
    checks = json.loads(res.output)["checks"]
    assert len(checks) == 6 and all(c["match"] for c in checks)
    topo = Lab.open(tmp_path / "demo").topology()
    pe_ip = str(topo.private_endpoint_ip(topo.find("private_endpoints", "pe-kv")))
    assert checks[4]["got"] == [pe_ip]            # after the link: the endpoint's address, from the model
    assert [link.virtual_network for link in topo.private_dns_zones[0].virtual_network_links] == ["hub", "app"]
    bad = runner.invoke(app, ["demo", "nope", "--home", str(tmp_path / "other")])
    assert bad.exit_code == 2 and "InvalidArgumentValue" in bad.output


def test_down(home):
    assert cli(home, "down").exit_code == 0
    assert Lab.open(home).exists() is False


def test_the_console_script_flushes_its_answer_and_exit_status(tmp_path):
    """`vnetlab` ends its process without the interpreter's teardown (cli.main.Cli): the whole answer is
    written, the exit status and the error message are the command's."""
    import subprocess
    import sys
    home = up_note(tmp_path)

    def run(*args):
        return subprocess.run([sys.executable, "-m", "vnetlab.cli.main", *args, "--home", str(home)],
                              capture_output=True, text=True, timeout=120)
    done = run("matrix", "--ports", "80", "-o", "json")
    assert done.returncode == 0 and json.loads(done.stdout)["endpoints"] == 2
    missing = run("show", "nothing-here")
    assert missing.returncode == 2 and "ResourceNotFound" in missing.stderr and not missing.stdout
    usage = run("matrix", "--no-such-option")
    assert usage.returncode == 2 and "No such option" in usage.stderr
