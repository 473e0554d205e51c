"""The real az CLI against the endpoint (make test-az). azure-cli is about 730 MB, so it lives in
its own venv (.venv-az, or $VNETLAB_AZ naming the az executable); without it these tests skip."""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from vnetlab.api import ServerThread, create_app, ensure_tls
from vnetlab.api.azsetup import az_env, az_setup_for, az_setup_script
from vnetlab.api.discovery import SUBSCRIPTION
from vnetlab.engine.trace import trace
from vnetlab.lab import Lab
from vnetlab.model import KINDS

pytestmark = pytest.mark.az


def find_az() -> str | None:
    candidates = [os.environ.get("VNETLAB_AZ"), str(Path(__file__).resolve().parents[1] / ".venv-az/bin/az"),
                  shutil.which("az")]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


AZ = find_az()


def az_python() -> str | None:
    """The Python of the az installation, when ``az`` is its pip entry script (``#!.../python3``)."""
    try:
        first = Path(AZ).read_text(errors="replace").split("\n", 1)[0]
    except (OSError, TypeError):
        return None
    interpreter = first.removeprefix("#!").strip()
    return interpreter if first.startswith("#!") and "python" in Path(interpreter).name \
        and os.access(interpreter, os.X_OK) else None


class AzSession:
    """az commands in one long-lived process of az's own Python (tests/az_worker.py): each command is
    what the az entry point runs, without az's start-up per command (a second or more: most of the
    az tests' time). Where az is not a pip entry script, each command is its own ``az`` process."""

    def __init__(self, env: dict[str, str]):
        self.env, python = env, az_python()
        self.worker = None if python is None else subprocess.Popen(
            [python, str(Path(__file__).with_name("az_worker.py"))], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, env={**env, "AZ_INSTALLER": "PIP"})

    def run(self, args: list[str], timeout: float = 120) -> subprocess.CompletedProcess:
        if self.worker is None:
            return subprocess.run([AZ, *args], capture_output=True, text=True, env=self.env, timeout=timeout)
        self.worker.stdin.write(json.dumps(args) + "\n")
        self.worker.stdin.flush()
        ready, _, _ = select.select([self.worker.stdout], [], [], timeout)
        line = self.worker.stdout.readline() if ready else ""
        if not line:
            self.worker.kill()
            raise AssertionError(f"az {' '.join(args)}: no answer in {timeout} s")
        answer = json.loads(line)
        return subprocess.CompletedProcess([AZ, *args], answer["code"], answer["stdout"], answer["stderr"])

    def close(self) -> None:
        if self.worker is not None:
            self.worker.stdin.close()
            try:
                self.worker.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.worker.kill()
                self.worker.wait()


@contextmanager
def logged_in_az(home: Path) -> Iterator:
    """A vnetlab endpoint at ``home`` and the real az logged in to it: ``run(*args)`` runs one az command
    (JSON output; asserts success unless ``check=False``), ``run.show(*args)`` its parsed answer,
    ``run.script(text)`` one command per line as a user types them; ``run.setup`` is the login script,
    ``run.url`` the endpoint, ``run.lab`` the lab behind it, ``run.env`` the environment an ``az``
    process needs for it."""
    if AZ is None:
        pytest.skip("azure-cli not installed (python3 -m venv .venv-az && .venv-az/bin/pip install azure-cli)")
    tls = ensure_tls(home)
    config = home / "azcfg"
    with ServerThread(create_app(home), tls) as url:
        setup = az_setup_script(url, tls.ca, config, az_bin=AZ)
        done = subprocess.run(["bash", "-c", setup], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        env = {**os.environ, **az_env(tls.ca, config), "HOME": str(home)}  # az vm create may touch ~/.ssh
        session = AzSession(env)

        def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
            proc = session.run([*args, "--output", "json"])
            if check:
                assert proc.returncode == 0, f"az {' '.join(args)}: {proc.stderr}"
            return proc

        def script(text: str) -> None:
            for line in filter(None, (x.strip() for x in text.splitlines())):
                run(*line.split())

        run.setup, run.url, run.lab, run.env = setup, url, Lab.open(home), env
        run.script, run.show = script, lambda *args: json.loads(run(*args).stdout)
        try:
            yield run
        finally:
            session.close()


@pytest.fixture(scope="module")
def az(tmp_path_factory):
    with logged_in_az(tmp_path_factory.mktemp("azlab")) as run:
        yield run


def test_login_landed_on_the_vnetlab_cloud(az):
    # the az entry point itself, in a process of its own, as a user's shell runs it
    alone = subprocess.run([AZ, "account", "show", "--output", "json"], capture_output=True, text=True,
                           env=az.env, timeout=120)
    assert alone.returncode == 0, alone.stderr
    for account in (json.loads(alone.stdout), json.loads(az("account", "show").stdout)):
        assert account["environmentName"] == "vnetlab" and account["id"] == SUBSCRIPTION
        assert account["user"]["type"] == "servicePrincipal"


def test_setup_script_can_run_twice(az):
    again = subprocess.run(["bash", "-c", az.setup], capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr


def test_group_create_show_delete(az):
    created = json.loads(az("group", "create", "-n", "tmp-rg", "-l", "westeurope").stdout)
    assert created["id"] == f"/subscriptions/{SUBSCRIPTION}/resourceGroups/tmp-rg"
    assert created["properties"]["provisioningState"] == "Succeeded"
    shown = json.loads(az("group", "show", "-n", "TMP-RG").stdout)
    assert shown["name"] == "tmp-rg" and shown["location"] == "westeurope"
    assert json.loads(az("group", "exists", "-n", "tmp-rg").stdout) is True
    az("group", "delete", "-n", "tmp-rg", "--yes")
    missing = az("group", "show", "-n", "tmp-rg", check=False)
    assert missing.returncode == 3 and "ResourceGroupNotFound" in missing.stderr


@pytest.fixture(scope="module")
def note(az):
    """The field note's lab, typed as a user would (README's worked example)."""
    for args in (
        "group create -n rg1 -l westeurope",
        "network vnet create -g rg1 -n vnet1 --address-prefixes 10.0.0.0/24",
        "network nsg create -g rg1 -n nsg-vm",
        "network nsg rule create -g rg1 --nsg-name nsg-vm -n deny-https --priority 100 --access Deny "
        "--protocol Tcp --destination-port-ranges 443 --destination-address-prefixes 10.0.0.4",
        "network route-table create -g rg1 -n rt1",
        "network route-table route create -g rg1 --route-table-name rt1 -n to-nva --address-prefix 192.168.0.0/16 "
        "--next-hop-type VirtualAppliance --next-hop-ip-address 10.0.0.10",
        "network vnet subnet create -g rg1 --vnet-name vnet1 -n default --address-prefixes 10.0.0.0/26 "
        "--network-security-group nsg-vm --route-table rt1",
        "network vnet subnet create -g rg1 --vnet-name vnet1 -n integration --address-prefixes 10.0.0.128/26",
        "network nic create -g rg1 -n rg1vm1VMNic --vnet-name vnet1 --subnet default",
        "appservice plan create -g rg1 -n plan1 --sku P1V3 --is-linux",
        "webapp create -g rg1 -p plan1 -n app1 --container-image-name nginx:latest",
    ):
        az(*args.split())
    nic = json.loads(az("network", "nic", "show", "-g", "rg1", "-n", "rg1vm1VMNic").stdout)["id"]
    props = json.dumps({"networkProfile": {"networkInterfaces": [{"id": nic}]}})
    az("resource", "create", "-g", "rg1", "-n", "rg1vm1", "--resource-type", "Microsoft.Compute/virtualMachines",
       "-l", "westeurope", "--properties", props)
    az("resource", "tag", "-g", "rg1", "-n", "rg1vm1", "--resource-type", "Microsoft.Compute/virtualMachines",
       "--tags", "vnetlab-services=80/Tcp")
    return az


def test_note_lab_through_az(note):
    topo = note.lab.topology()
    assert topo.vnet("vnet1").subnet("default").network_security_group == "nsg-vm"
    assert topo.find("route_tables", "rt1").routes[0].next_hop_ip_address == "10.0.0.10"
    assert topo.find("network_interfaces", "rg1vm1VMNic").private_ip_address == "10.0.0.4"
    assert topo.find("app_service_plans", "plan1").os == "linux"
    site = json.loads(note("webapp", "show", "-g", "rg1", "-n", "app1").stdout)
    assert site["defaultHostName"] == "app1.azurewebsites.net" and site["state"] == "Running"


def test_vm_and_network_watcher(note):
    assert note.lab.topology().find("virtual_machines", "rg1vm1").services[0].port == 80
    flow = json.loads(note("network", "watcher", "test-ip-flow", "-g", "rg1", "--vm", "rg1vm1", "--direction",
                           "Inbound", "--protocol", "TCP", "--local", "10.0.0.4:443", "--remote",
                           "10.0.0.190:5000").stdout)
    assert flow == {"access": "Deny", "ruleName": "securityRules/deny-https"}
    hop = json.loads(note("network", "watcher", "show-next-hop", "-g", "rg1", "--vm", "rg1vm1", "--source-ip",
                          "10.0.0.4", "--dest-ip", "192.168.1.1").stdout)
    assert hop["nextHopType"] == "VirtualAppliance" and hop["nextHopIpAddress"] == "10.0.0.10"
    routes = json.loads(note("network", "nic", "show-effective-route-table", "-g", "rg1", "-n",
                             "rg1vm1VMNic").stdout)["value"]
    assert {"User", "Default"} == {r["source"] for r in routes}


def test_vnet_integration_add_list_remove(note):
    added = json.loads(note("webapp", "vnet-integration", "add", "-g", "rg1", "-n", "app1", "--vnet", "vnet1",
                            "--subnet", "integration").stdout)
    assert added["subnetResourceId"].endswith("/virtualNetworks/vnet1/subnets/integration")
    app = note.lab.topology().find("web_apps", "app1")
    assert app.vnet_integration == "vnet1/integration" and app.route_all  # az turns applicationTraffic on
    trace = note.lab.trace("app1", "rg1vm1", 80)
    assert trace.verdict == "Connected" and trace.source_ip_seen == "10.0.0.190"
    # az delegated the subnet on its way (it was not delegated)
    subnet = json.loads(note("network", "vnet", "subnet", "show", "-g", "rg1", "--vnet-name", "vnet1",
                             "-n", "integration").stdout)
    assert subnet["delegations"][0]["serviceName"] == "Microsoft.Web/serverFarms"
    assert subnet["serviceAssociationLinks"][0]["name"] == "AppServiceLink"
    listed = json.loads(note("webapp", "vnet-integration", "list", "-g", "rg1", "-n", "app1").stdout)
    assert [c["name"] for c in listed] == ["integration"]
    in_use = note("network", "vnet", "subnet", "delete", "-g", "rg1", "--vnet-name", "vnet1", "-n", "integration",
                  check=False)
    assert in_use.returncode != 0 and "InUseSubnetCannotBeDeleted" in in_use.stderr
    note("webapp", "config", "set", "-g", "rg1", "-n", "app1", "--generic-configurations",
         '{"vnetRouteAllEnabled": false}')
    assert not note.lab.topology().find("web_apps", "app1").route_all
    note("webapp", "vnet-integration", "remove", "-g", "rg1", "-n", "app1")
    assert note.lab.topology().find("web_apps", "app1").vnet_integration is None
    assert note.lab.trace("app1", "rg1vm1", 80).verdict == "TimedOut"


def test_require_token(tmp_path):
    """With --require-token the service principal's secret is the token; any other is refused."""
    if AZ is None:
        pytest.skip("azure-cli not installed")
    tls = ensure_tls(tmp_path)
    with ServerThread(create_app(tmp_path, require_token="s3cret"), tls) as url:
        port = int(url.rsplit(":", 1)[1])
        wrong = subprocess.run(["bash", "-c", az_setup_for(tmp_path, port=port, az_bin=AZ, require_token="no")],
                               capture_output=True, text=True, timeout=120)
        assert wrong.returncode != 0 and "AADSTS7000215" in wrong.stderr
        right = subprocess.run(["bash", "-c", az_setup_for(tmp_path, port=port, az_bin=AZ, require_token="s3cret")],
                               capture_output=True, text=True, timeout=120)
        assert right.returncode == 0, right.stderr
        env = {**os.environ, **az_env(tls.ca, tmp_path / "azure")}
        listed = subprocess.run([AZ, "group", "list", "-o", "json"], capture_output=True, text=True,
                                env=env, timeout=120)
        assert listed.returncode == 0 and json.loads(listed.stdout) == []  # a new lab has no group


# -- az as Azure engineers type it (issue 8 §4) ----------------------------------------------------

# A throwaway public key (its private half was never kept): az vm create wants a well-formed one.
SSH_KEY = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQCtbxs5235BsXHgxEp1FuTtCRfk1dB0fqHeXcrleEDwx0YG1tUmQemkUqBFQPCcyqHsPoKVn2vXWSvMr6PoK14xDD1233t+ZWqIkHIPwa10fFiQVOv8gzNAYWHy7BeWNsk0bbKKHcw7tbsQOfDZ4ED9lm6gKm8Vrx0V/1gAMk4kQFq2WIgN9BAk9rYdNEZVa/5+2rKDOCzTzD6X4qF/qi6xra16KAfSpdqdHAPo7Zq+rCK156GwyiexOVABk/9cxXDhslVTp5J9GB3YW6bVMCjdIzdUV0vaFkD1oZUlRcqE7/WlsxMppHMY5OJOlZEeFg/W7+SDVRWQXiVuKSrxRKGt vnetlab-test"


@pytest.fixture(scope="module")
def vms(az):
    """Two VMs made by az vm create, the two ways engineers type it, in their own group."""
    for args in ("group create -n rg-vm -l westeurope",
                 "network vnet create -g rg-vm -n vnet-vm --address-prefixes 10.20.0.0/16 --subnet-name default "
                 "--subnet-prefixes 10.20.0.0/24",
                 "network nic create -g rg-vm -n nic-a --vnet-name vnet-vm --subnet default"):
        az(*args.split())
    vm = ["vm", "create", "-g", "rg-vm", "--image", "Ubuntu2204", "--admin-username", "azureuser",
          "--ssh-key-values", SSH_KEY]
    az.created = {
        "vm-a": json.loads(az(*vm, "-n", "vm-a", "--nics", "nic-a").stdout),
        "vm-b": json.loads(az(*vm, "-n", "vm-b", "--vnet-name", "vnet-vm", "--subnet", "default",
                              "--private-ip-address", "10.20.0.10", "--public-ip-address", "", "--nsg", "").stdout),
    }
    az.vm_args = vm
    return az


def test_vm_create_with_an_image_alias_nics_or_subnet_and_address(vms):
    topo = vms.lab.topology()
    assert vms.created["vm-a"]["powerState"] == "VM running"
    assert vms.created["vm-a"]["privateIpAddress"] == topo.find("network_interfaces", "nic-a").private_ip_address
    assert topo.find("virtual_machines", "vm-a").network_interface == "nic-a"
    assert vms.created["vm-b"]["privateIpAddress"] == "10.20.0.10"
    nic_b = topo.find("network_interfaces", topo.find("virtual_machines", "vm-b").network_interface)
    assert (nic_b.name, nic_b.subnet, nic_b.private_ip_address) == ("vm-bVMNic", "vnet-vm/default", "10.20.0.10")
    listed = json.loads(vms("vm", "list-ip-addresses", "-g", "rg-vm").stdout)
    assert {v["virtualMachine"]["name"]: v["virtualMachine"]["network"]["privateIpAddresses"] for v in listed} == {
        "vm-a": [topo.find("network_interfaces", "nic-a").private_ip_address], "vm-b": ["10.20.0.10"]}
    # the default form deploys a public IP too: the NIC holds it, and the VM is seen at it on the internet
    made = json.loads(vms(*vms.vm_args, "-n", "vm-c", "--vnet-name", "vnet-vm", "--subnet", "default").stdout)
    after = vms.lab.topology()
    nic_c = after.find("network_interfaces", after.find("virtual_machines", "vm-c").network_interface)
    assert made["publicIpAddress"] == after.find("public_ip_addresses", nic_c.public_ip_address).ip_address
    assert after.find("network_security_groups", "vm-cNSG") is not None


def test_vm_stop_deallocate_and_start(vms):
    """``az vm deallocate`` / ``stop`` / ``start`` as typed: the power state the instance view shows and
    the lab's VM (left running at the end: the module's other tests use it)."""
    def power() -> str:
        view = json.loads(vms("vm", "get-instance-view", "-g", "rg-vm", "-n", "vm-b").stdout)
        return next(s["code"] for s in view["instanceView"]["statuses"] if s["code"].startswith("PowerState/"))

    try:
        vms("vm", "deallocate", "-g", "rg-vm", "-n", "vm-b")
        assert power() == "PowerState/deallocated"
        assert vms.lab.topology().find("virtual_machines", "vm-b").power_state == "deallocated"
        vms("vm", "stop", "-g", "rg-vm", "-n", "vm-b")
        assert power() == "PowerState/stopped"
    finally:
        vms("vm", "start", "-g", "rg-vm", "-n", "vm-b")
    assert power() == "PowerState/running"


def test_resource_list_show_and_group_export_round_trip(vms, tmp_path):
    topo = vms.lab.topology()
    mine = {r.name for kind in KINDS for r in getattr(topo, kind) if topo.rg_of(r) == "rg-vm"}
    listed = json.loads(vms("resource", "list", "-g", "rg-vm").stdout)
    assert {r["name"] for r in listed} == mine and {r["resourceGroup"] for r in listed} == {"rg-vm"}
    only_vms = json.loads(vms("resource", "list", "-g", "rg-vm", "--resource-type",
                              "Microsoft.Compute/virtualMachines").stdout)
    assert sorted(r["name"] for r in only_vms) == ["vm-a", "vm-b", "vm-c"]
    shown = json.loads(vms("resource", "show", "--ids", only_vms[0]["id"]).stdout)
    assert shown["id"] == only_vms[0]["id"] and shown["properties"]["hardwareProfile"]["vmSize"]
    exported = vms("group", "export", "-n", "rg-vm").stdout
    template = json.loads(exported)
    assert template["parameters"] == {} and {r["name"] for r in template["resources"]} == mine
    assert "provisioningState" not in exported and "resourceGroups/rg-vm" not in exported
    # the template is real: the group deleted and deployed again from it is the same group
    before = {kind: [r for r in getattr(topo, kind) if topo.rg_of(r) == "rg-vm"] for kind in KINDS}
    (tmp_path / "rg-vm.json").write_text(exported)
    vms("group", "delete", "-n", "rg-vm", "--yes")
    gone = vms.lab.topology()
    assert gone.group("rg-vm") is None and not any(gone.rg_of(r) == "rg-vm" for k in KINDS for r in getattr(gone, k))
    vms("group", "create", "-n", "rg-vm", "-l", "westeurope")
    vms("deployment", "group", "create", "-g", "rg-vm", "--template-file", str(tmp_path / "rg-vm.json"))
    again = vms.lab.topology()
    assert {kind: [r for r in getattr(again, kind) if again.rg_of(r) == "rg-vm"] for kind in KINDS} == before


def test_vnet_check_ip_address_list_available_ips_and_delegations(vms):
    def check(ip: str) -> dict:
        return json.loads(vms("network", "vnet", "check-ip-address", "-g", "rg-vm", "-n", "vnet-vm",
                              "--ip-address", ip).stdout)

    held = check("10.20.0.10")                       # vm-b's address
    assert held["available"] is False and len(held["availableIPAddresses"]) == 5
    nic_ips = {n.private_ip_address for n in vms.lab.topology().network_interfaces}
    assert all(ip not in nic_ips and int(ip.rsplit(".", 1)[1]) > 10 for ip in held["availableIPAddresses"])
    assert check("10.20.0.1")["available"] is False  # Azure's gateway address
    assert check("10.20.0.200") == {"available": True}
    free = json.loads(vms("network", "vnet", "list-available-ips", "-g", "rg-vm", "-n", "vnet-vm").stdout)
    # the first free address is the one the next dynamic NIC gets
    nic = json.loads(vms("network", "nic", "create", "-g", "rg-vm", "-n", "nic-probe", "--vnet-name", "vnet-vm",
                         "--subnet", "default").stdout)
    assert nic["NewNIC"]["ipConfigurations"][0]["privateIPAddress"] == free[0]
    vms("network", "nic", "delete", "-g", "rg-vm", "-n", "nic-probe")
    services = json.loads(vms("network", "vnet", "subnet", "list-available-delegations", "-l", "westeurope",
                              "--query", "[].serviceName").stdout)
    assert "Microsoft.Web/serverFarms" in services


def test_webapp_create_with_a_runtime_and_stop_start_restart(note):
    created = json.loads(note("webapp", "create", "-g", "rg1", "-p", "plan1", "-n", "app-py",
                              "--runtime", "PYTHON:3.12").stdout)
    assert created["siteConfig"]["linuxFxVersion"] == "PYTHON|3.12"
    app = note.lab.topology().find("web_apps", "app-py")
    assert app.site_config["linuxFxVersion"] == "PYTHON|3.12" and app.state == "Running"
    states = []
    for action in ("stop", "start", "stop", "restart"):
        note("webapp", action, "-g", "rg1", "-n", "app-py")
        states.append(json.loads(note("webapp", "show", "-g", "rg1", "-n", "app-py").stdout)["state"])
    assert states == ["Stopped", "Running", "Stopped", "Running"]  # a restart starts a stopped app
    assert note.lab.topology().find("web_apps", "app-py").restarts == 1
    note("webapp", "delete", "-g", "rg1", "-n", "app-py")


def test_watcher_test_connectivity_names_the_dropping_hop_internet_and_web_app_source(vms, note):
    """The destination's NSG drops: the issue is on the destination hop, which carries the VM's id."""
    vms("network", "nsg", "create", "-g", "rg-vm", "-n", "nsg-web")
    vms("network", "nsg", "rule", "create", "-g", "rg-vm", "--nsg-name", "nsg-web", "-n", "deny-https",
        "--priority", "100", "--access", "Deny", "--protocol", "Tcp", "--destination-port-ranges", "443")
    vms("network", "nic", "update", "-g", "rg-vm", "-n", "nic-a", "--network-security-group", "nsg-web")
    try:
        check = json.loads(vms("network", "watcher", "test-connectivity", "-g", "rg-vm", "--source-resource", "vm-b",
                               "--dest-resource", "vm-a", "--dest-port", "443").stdout)
        topo = vms.lab.topology()
        source, dest = check["hops"][0], check["hops"][-1]
        assert check["connectionStatus"] == "Unreachable" and source["issues"] == []
        assert dest["type"] == "VirtualMachine" and dest["resourceId"] == topo.id_of(
            "virtual_machines", topo.find("virtual_machines", "vm-a"))
        [issue] = dest["issues"]
        assert issue["type"] == "NetworkSecurityRule" and issue["origin"] == "Inbound"
        assert {c["key"]: c["value"] for c in issue["context"]} == {"RuleName": "deny-https",
                                                                    "NetworkSecurityGroup": "nsg-web"}
        out = json.loads(vms("network", "watcher", "test-connectivity", "-g", "rg-vm", "--source-resource", "vm-b",
                             "--dest-address", "203.0.113.10", "--dest-port", "80").stdout)
        assert out["connectionStatus"] == "Reachable" and out["hops"][-1]["type"] == "Internet"
        assert out["hops"][-1].get("resourceId") is None  # az leaves out null members
    finally:
        vms("network", "nic", "update", "-g", "rg-vm", "-n", "nic-a", "--remove", "networkSecurityGroup")
        vms("network", "nsg", "delete", "-g", "rg-vm", "-n", "nsg-web")
    # az treats --source-resource as a VM; a web app source goes through az rest, as docs/arm.md shows
    app = note.lab.topology().find("web_apps", "app1")
    app_id = note.lab.topology().id_of("web_apps", app)
    body = json.dumps({"source": {"resourceId": app_id},
                       "destination": {"address": "203.0.113.10", "port": 80}})
    url = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/NetworkWatcherRG/providers/Microsoft.Network/"
           "networkWatchers/NetworkWatcher_westeurope/connectivityCheck?api-version=2024-07-01")
    from_app = json.loads(note("rest", "--method", "post", "--url", url, "--body", body).stdout)
    assert from_app["hops"][0]["resourceId"] == app_id and from_app["hops"][-1]["type"] == "Internet"
    assert from_app["connectionStatus"] == "Reachable"


def test_deployment_group_validate_what_if_and_create_with_a_bicep_built_template(az, tmp_path):
    """az deployment group validate / what-if / create against the endpoint, with a template in the shape
    bicep build writes (copy loops, conditions, reference(), a nested deployment), and one that fails."""
    template = json.loads((Path(__file__).parent / "data/estate/hub-spoke.bicep.json").read_text())
    template["resources"] = [r for r in template["resources"] if r["type"] != "Microsoft.Network/publicIPAddresses"]
    (tmp_path / "shop.json").write_text(json.dumps(template))
    az("group", "create", "-n", "rg-shop", "-l", "northeurope")
    deploy = ["-g", "rg-shop", "--template-file", str(tmp_path / "shop.json")]
    validated = json.loads(az("deployment", "group", "validate", *deploy, "--parameters", "spokeCount=1").stdout)
    assert validated["properties"]["provisioningState"] == "Succeeded"
    assert az.lab.topology().group("rg-shop") is not None and az.lab.topology().vnet("vnet-shop-hub") is None
    what_if = json.loads(az("deployment", "group", "what-if", *deploy, "--no-pretty-print").stdout)
    kinds = {c["resourceId"].rsplit("/", 1)[1]: c["changeType"] for c in what_if["changes"]}
    assert kinds["vnet-shop-spoke2"] == "Create" and kinds["nsg-shop-app"] == "Create"
    created = json.loads(az("deployment", "group", "create", *deploy, "-n", "shop").stdout)
    assert created["properties"]["provisioningState"] == "Succeeded"
    app = created["properties"]["outputs"]["appName"]["value"]
    topo = az.lab.topology()
    assert topo.find("web_apps", app).vnet_integration == "vnet-shop-spoke1/snet-integration"
    assert topo.find("network_interfaces", "vm-appVMNic").subnet == "vnet-shop-spoke1/snet-app"
    template["resources"][0]["properties"]["securityRules"][0]["properties"]["destinationPortRange"] = "8443"
    (tmp_path / "shop.json").write_text(json.dumps(template))
    what_if = json.loads(az("deployment", "group", "what-if", *deploy, "--no-pretty-print").stdout)
    nsg = next(c for c in what_if["changes"] if c["resourceId"].endswith("/nsg-shop-app"))
    assert nsg["changeType"] == "Modify" and nsg["delta"][0]["after"] == "8443"
    # a resource Azure refuses fails the deployment; those before it stay
    template["resources"].insert(0, {"type": "Microsoft.Network/routeTables", "apiVersion": "2024-05-01",
                                     "name": "rt-first", "location": "northeurope", "properties": {}})
    template["resources"].insert(1, {"type": "Microsoft.Network/virtualNetworks", "apiVersion": "2024-05-01",
                                     "name": "vnet-bad", "location": "northeurope", "dependsOn": ["rt-first"],
                                     "properties": {"addressSpace": {"addressPrefixes": ["10.50.0.0/16"]},
                                                    "subnets": [{"name": "s", "properties":
                                                                 {"addressPrefix": "10.99.0.0/24"}}]}})
    (tmp_path / "bad.json").write_text(json.dumps(template))
    failed = az("deployment", "group", "create", "-g", "rg-shop", "--template-file", str(tmp_path / "bad.json"),
                check=False)
    assert failed.returncode != 0 and "DeploymentFailed" in failed.stderr
    assert "NetcfgSubnetRangeOutsideVnet" in failed.stderr
    after = az.lab.topology()
    assert after.find("route_tables", "rt-first") is not None and after.vnet("vnet-bad") is None


# -- a NIC's several IP configurations (issue 8 §3) ------------------------------------------------

@pytest.fixture(scope="module")
def multi(az):
    """A VM whose NIC gets secondary IP configurations through az, in its own group."""
    for args in ("group create -n rg-ipc -l westeurope",
                 "network vnet create -g rg-ipc -n vnet-ipc --address-prefixes 10.30.0.0/16 --subnet-name default "
                 "--subnet-prefixes 10.30.0.0/24",
                 "network nic create -g rg-ipc -n nic-m --vnet-name vnet-ipc --subnet default "
                 "--private-ip-address 10.30.0.4",
                 "network nic create -g rg-ipc -n nic-c --vnet-name vnet-ipc --subnet default"):
        az(*args.split())
    vm = ["vm", "create", "-g", "rg-ipc", "--image", "Ubuntu2204", "--admin-username", "azureuser",
          "--ssh-key-values", SSH_KEY]
    az(*vm, "-n", "vm-m", "--nics", "nic-m")
    az(*vm, "-n", "vm-ipc", "--nics", "nic-c")
    return az


def test_nic_ip_config_create_list_and_list_ip_addresses(multi):
    created = json.loads(multi("network", "nic", "ip-config", "create", "-g", "rg-ipc", "--nic-name", "nic-m",
                               "-n", "ipconfig2", "--private-ip-address", "10.30.0.50").stdout)
    assert (created["name"], created["privateIPAddress"], created["privateIPAllocationMethod"], created["primary"]) \
        == ("ipconfig2", "10.30.0.50", "Static", False)
    dynamic = json.loads(multi("network", "nic", "ip-config", "create", "-g", "rg-ipc", "--nic-name", "nic-m",
                               "-n", "ipconfig3").stdout)
    nic = multi.lab.topology().find("network_interfaces", "nic-m")
    assert [(c.name, c.private_ip_address, c.primary) for c in nic.ip_configurations] == [
        ("ipconfig1", "10.30.0.4", True), ("ipconfig2", "10.30.0.50", False),
        ("ipconfig3", dynamic["privateIPAddress"], False)]
    assert dynamic["privateIPAllocationMethod"] == "Dynamic" and dynamic["privateIPAddress"] not in (None, "10.30.0.4")
    listed = json.loads(multi("network", "nic", "ip-config", "list", "-g", "rg-ipc", "--nic-name", "nic-m").stdout)
    assert [c["name"] for c in listed] == ["ipconfig1", "ipconfig2", "ipconfig3"]
    ips = json.loads(multi("vm", "list-ip-addresses", "-g", "rg-ipc", "-n", "vm-m").stdout)
    assert ips[0]["virtualMachine"]["network"]["privateIpAddresses"] == ["10.30.0.4", "10.30.0.50",
                                                                         dynamic["privateIPAddress"]]
    trace = multi.lab.trace("vm-ipc", "10.30.0.50", protocol="Icmp")
    assert trace.verdict == "Connected" and trace.steps[-1].detail.ip_configuration == "ipconfig2"
    multi("network", "nic", "ip-config", "delete", "-g", "rg-ipc", "--nic-name", "nic-m", "-n", "ipconfig3")
    assert multi.lab.topology().find("network_interfaces", "nic-m").addresses == ["10.30.0.4", "10.30.0.50"]


def test_nic_ip_config_refused_like_azure(multi):
    before = multi.lab.topology().find("network_interfaces", "nic-c")
    taken = multi("network", "nic", "ip-config", "create", "-g", "rg-ipc", "--nic-name", "nic-c", "-n", "second",
                  "--private-ip-address", before.private_ip_address, check=False)
    assert taken.returncode != 0 and "PrivateIPAddressIsAllocated" in taken.stderr
    outside = multi("network", "nic", "ip-config", "create", "-g", "rg-ipc", "--nic-name", "nic-c", "-n", "second",
                    "--private-ip-address", "10.31.0.9", check=False)
    assert outside.returncode != 0 and "PrivateIPAddressNotInSubnet" in outside.stderr
    assert multi.lab.topology().find("network_interfaces", "nic-c") == before


def test_public_ip_nat_gateway_and_subnet_nat_gateway_through_az(az):
    """az network public-ip create, nat gateway create, vnet subnet update --nat-gateway: the engine's
    source seen follows (engine.outbound)."""
    for args in ("group create -n rg-nat -l westeurope",
                 "network vnet create -g rg-nat -n vnet-nat --address-prefixes 10.32.0.0/16 --subnet-name vms "
                 "--subnet-prefixes 10.32.0.0/24",
                 "network public-ip create -g rg-nat -n pip-nat --sku Standard --allocation-method Static",
                 "network public-ip prefix create -g rg-nat -n pfx-nat --length 30",
                 "network nat gateway create -g rg-nat -n natgw --public-ip-addresses pip-nat "
                 "--public-ip-prefixes pfx-nat --idle-timeout 10",
                 "network vnet subnet update -g rg-nat --vnet-name vnet-nat -n vms --nat-gateway natgw",
                 "network nic create -g rg-nat -n nic-nat --vnet-name vnet-nat --subnet vms"):
        az(*args.split())
    pip = json.loads(az("network", "public-ip", "show", "-g", "rg-nat", "-n", "pip-nat").stdout)
    topo = az.lab.topology()
    assert pip["ipAddress"] == topo.find("public_ip_addresses", "pip-nat").ip_address
    assert pip["natGateway"]["id"].endswith("/natGateways/natgw")
    nat = json.loads(az("network", "nat", "gateway", "show", "-g", "rg-nat", "-n", "natgw").stdout)
    assert nat["idleTimeoutInMinutes"] == 10 and nat["subnets"][0]["id"].endswith("/subnets/vms")
    assert topo.vnet("vnet-nat").subnet("vms").nat_gateway == "natgw"
    t = trace(topo, "nic-nat", "public-test", 443)
    assert (t.verdict, t.source_ip_seen) == ("Connected", pip["ipAddress"])
    listed = json.loads(az("network", "public-ip", "list", "-g", "rg-nat").stdout)
    assert [p["name"] for p in listed] == ["pip-nat"]
    # az's read-modify-write of the subnet (and of its VNet) keeps the NAT gateway
    az("network", "vnet", "subnet", "update", "-g", "rg-nat", "--vnet-name", "vnet-nat", "-n", "vms",
       "--service-endpoints", "Microsoft.Storage")
    az("network", "vnet", "update", "-g", "rg-nat", "-n", "vnet-nat", "--set", "tags.env=lab")
    assert az.lab.topology().vnet("vnet-nat").subnet("vms").nat_gateway == "natgw"
    az("network", "vnet", "subnet", "update", "-g", "rg-nat", "--vnet-name", "vnet-nat", "-n", "vms",
       "--remove", "natGateway")
    assert az.lab.topology().vnet("vnet-nat").subnet("vms").nat_gateway is None
    # a private subnet: without its NAT gateway the NIC has no way out
    az("network", "vnet", "subnet", "update", "-g", "rg-nat", "--vnet-name", "vnet-nat", "-n", "vms",
       "--default-outbound-access", "false")
    topo = az.lab.topology()
    assert topo.vnet("vnet-nat").subnet("vms").default_outbound_access is False
    assert trace(topo, "nic-nat", "public-test", 443).reason == "NoOutboundAccess"
    in_use = az("network", "nic", "ip-config", "update", "-g", "rg-nat", "--nic-name", "nic-nat", "-n", "ipconfig1",
                "--public-ip-address", "pip-nat", check=False)
    assert in_use.returncode != 0 and "PublicIPAddressInUse" in in_use.stderr
