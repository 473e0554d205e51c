"""ARM changes apply to the running emulation: the SDK-facing endpoint on a netns lab, as root."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from vnetlab.api import ServerThread, create_app, ensure_tls
from vnetlab.backends import netns_backend as nb
from vnetlab.backends.netns import kernel
from vnetlab.backends.netns.plan import lab_id_for
from vnetlab.lab import Lab
from vnetlab.topology import load
from netns_support import NETNS_MARKS  # noqa: E402

pytestmark = NETNS_MARKS

NOTE = Path(__file__).resolve().parents[1] / "examples" / "app-service-vnet-integration.yaml"


def test_integration_through_the_api_changes_the_live_sandbox(tmp_path):
    lab = Lab.open(tmp_path / "home")
    prefix = f"vl{lab_id_for(lab.home)}-"
    try:
        lab.up(load(NOTE), "netns")
        before = lab.trace("app1", "rg1vm1", 80, "Tcp").to_dict()
        assert nb.probe(lab, before)["verdict"] == before["verdict"] == "TimedOut"
        topo = lab.topology()
        subnet_id = topo.subnet_id("vnet1/integration")
        site = topo.id_of("web_apps", topo.find("web_apps", "app1"))
        ca = ssl.create_default_context(cafile=str(ensure_tls(lab.home).ca))
        with ServerThread(create_app(lab.home, backend="netns"), ensure_tls(lab.home)) as url:
            with httpx.Client(base_url=url, verify=ca, timeout=60, params={"api-version": "2023-12-01"}) as http:
                missing = http.put(f"{site}/networkConfig/virtualNetwork",
                                   json={"properties": {"subnetResourceId": subnet_id}})
                assert missing.status_code == 400 and missing.json()["error"]["code"] == "SubnetMissingDelegation"
                delegated = {"properties": {"addressPrefix": "10.0.0.128/26", "delegations": [
                    {"name": "0", "properties": {"serviceName": "Microsoft.Web/serverFarms"}}]}}
                assert http.put(subnet_id, json=delegated).status_code in (200, 201)
                done = http.put(f"{site}/networkConfig/virtualNetwork",
                                json={"properties": {"subnetResourceId": subnet_id}})
                assert done.status_code == 200, done.text
        after = lab.trace("app1", "rg1vm1", 80, "Tcp").to_dict()
        assert after["verdict"] == "Connected"
        assert nb.probe(lab, after)["verdict"] == "Connected"
        app = lab.topology().find("web_apps", "app1")
        assert nb.route_n(lab, "app1") == lab.network().sandbox(app).route_n()
    finally:
        lab.down()
        assert not [n for n in kernel.netns_list() if n.startswith(prefix)]


def test_webapp_stop_start_restart_reach_the_app_process(tmp_path):
    """az webapp stop/start/restart: a stopped app's process is gone; a restart is a new process."""
    from vnetlab.backends.netns.processes import service_states

    lab = Lab.open(tmp_path / "home")
    prefix = f"vl{lab_id_for(lab.home)}-"

    def app_pids() -> list[int]:
        return [s.pid for s in service_states(lab.store) if s.resource == "app1" and s.state == "running"]

    try:
        lab.up(load(NOTE), "netns")
        [first] = app_pids()
        topo = lab.topology()
        site = topo.id_of("web_apps", topo.find("web_apps", "app1"))
        ca = ssl.create_default_context(cafile=str(ensure_tls(lab.home).ca))
        with ServerThread(create_app(lab.home, backend="netns"), ensure_tls(lab.home)) as url:
            with httpx.Client(base_url=url, verify=ca, timeout=60, params={"api-version": "2025-05-01"}) as http:
                def act(action: str) -> str:
                    assert http.post(f"{site}/{action}").status_code == 200
                    return http.get(site).json()["properties"]["state"]

                assert act("stop") == "Stopped" and app_pids() == []
                assert act("start") == "Running"
                [started] = app_pids()
                assert act("restart") == "Running"
                [restarted] = app_pids()
        assert len({first, started, restarted}) == 3
        assert lab.topology().find("web_apps", "app1").restarts == 1
    finally:
        lab.down()
        assert not [n for n in kernel.netns_list() if n.startswith(prefix)]
