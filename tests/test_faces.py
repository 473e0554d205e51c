"""The CLI and the ARM API are two faces of one service layer: the same change through either
gives the same lab. Route All has one truth table (the model's), which both faces set through
one verb and the ARM GET renders."""

from __future__ import annotations

import copy
import json
import warnings

import pytest
from conftest import NOTE, cli, up_note

from vnetlab.api import create_app
from vnetlab.api.discovery import SUBSCRIPTION
from vnetlab.lab import Lab
from vnetlab.model import WebApp

with warnings.catch_warnings():  # starlette prefers httpx2 for its test client; httpx is what we have
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

RG = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1"
NET = f"{RG}/providers/Microsoft.Network"
WEB = f"{RG}/providers/Microsoft.Web"


def arm(home) -> TestClient:
    """The ARM endpoint of the lab at ``home``, in-process."""
    client = TestClient(create_app(home))
    client.params = {"api-version": "2024-11-01"}
    return client


def _note_with(**app_fields) -> dict:
    doc = copy.deepcopy(NOTE)
    doc["web_apps"][0].update(app_fields)
    return doc


def _default_iface(home) -> str:
    """The interface of the sandbox's default route, as `vnetlab routes` prints it."""
    rows = cli(home, "routes", "app1").output.splitlines()
    return next(r for r in rows if r.startswith("0.0.0.0")).split()[-1]


# -- Route All: one truth table ---------------------------------------------------------------------

@pytest.mark.parametrize("fields", [
    {"vnet_route_all_enabled": True},
    {"outbound_vnet_routing": {"application_traffic": True}},
    {"outbound_vnet_routing": {"all_traffic": True}},
    {"app_settings": {"WEBSITE_VNET_ROUTE_ALL": "1"}},
])
def test_each_documented_setting_turns_route_all_on(fields):
    app = WebApp(name="a", plan="p", **fields)
    assert app.route_all
    assert WebApp(name="a", plan="p").route_all is False


@pytest.mark.parametrize("fields", [
    {"vnet_route_all_enabled": True},
    {"outbound_vnet_routing": {"application_traffic": True, "image_pull_traffic": True}},
    {"outbound_vnet_routing": {"all_traffic": True}},
    {"app_settings": {"website_vnet_route_all": "1", "OTHER": "x"}},
])
def test_route_all_off_turns_every_setting_off_and_keeps_the_rest(fields):
    app = WebApp(name="a", plan="p", **fields)
    channels_before = app.effective_outbound_routing()
    app.set_route_all(False)
    assert not any(app.route_all_sources().values())
    after = app.effective_outbound_routing()
    assert (after.image_pull_traffic, after.content_share_traffic) == \
        (channels_before.image_pull_traffic, channels_before.content_share_traffic)
    assert app.app_settings.get("OTHER", "x") == "x"


def test_arm_get_shows_route_all_when_all_traffic_routes_everything(tmp_path):
    home = up_note(tmp_path, _note_with(outbound_vnet_routing={"all_traffic": True}))
    assert _default_iface(home).startswith("vnet")
    site = arm(home).get(f"{WEB}/sites/app1").json()["properties"]
    assert site["vnetRouteAllEnabled"] is True
    assert site["outboundVnetRouting"]["applicationTraffic"] is True
    assert site["siteConfig"]["vnetRouteAllEnabled"] is True
    config = arm(home).get(f"{WEB}/sites/app1/config/web").json()["properties"]
    assert config["vnetRouteAllEnabled"] is True


def test_cli_route_all_off_takes_the_default_route_off_the_vnet(tmp_path):
    home = up_note(tmp_path, _note_with(outbound_vnet_routing={"application_traffic": True}))
    assert _default_iface(home).startswith("vnet")
    res = cli(home, "webapp", "config", "set", "-n", "app1", "--vnet-route-all-enabled", "false", "-o", "json")
    assert res.exit_code == 0 and json.loads(res.output)["vnetRouteAllEnabled"] is False
    assert _default_iface(home) == "eth0"
    site = arm(home).get(f"{WEB}/sites/app1").json()["properties"]
    assert site["vnetRouteAllEnabled"] is False and site["outboundVnetRouting"]["applicationTraffic"] is False


def test_arm_put_back_of_a_get_with_route_all_turned_off_turns_it_off(tmp_path):
    """az resource update GETs the site, sets properties.vnetRouteAllEnabled=false and PUTs it all back,
    outboundVnetRouting.applicationTraffic (still true) included: the member that changed wins."""
    home = up_note(tmp_path, _note_with(vnet_route_all_enabled=True))
    client = arm(home)
    site = client.get(f"{WEB}/sites/app1").json()
    site["properties"]["vnetRouteAllEnabled"] = False
    assert client.put(f"{WEB}/sites/app1", json=site).status_code == 200
    assert Lab.open(home).topology().find("web_apps", "app1").route_all is False
    assert _default_iface(home) == "eth0"


# -- the same changes through the CLI and through ARM give the same lab -------------------------------

def _faces_doc() -> dict:
    doc = copy.deepcopy(NOTE)
    vnet1 = doc["virtual_networks"][0]
    vnet1["subnets"][1].pop("delegations")
    vnet1["subnets"][0]["network_security_group"] = "nsg1"
    vnet1["peerings"] = [{"name": "to-spoke", "remote_virtual_network": "spoke"}]
    doc["virtual_networks"].append({"name": "spoke", "address_space": ["10.1.0.0/24"],
                                    "subnets": [{"name": "default", "address_prefix": "10.1.0.0/26"}],
                                    "peerings": [{"name": "to-vnet1", "remote_virtual_network": "vnet1"}]})
    doc["network_security_groups"] = [{"name": "nsg1"}]
    doc["web_apps"][0].pop("vnet_integration")
    doc["web_apps"][0]["outbound_vnet_routing"] = {"image_pull_traffic": True}  # Route All must set both names
    return doc


def _cli_steps():
    return [
        ("webapp", "vnet-integration", "add", "-n", "app1", "--vnet", "vnet1", "--subnet", "integration"),
        ("webapp", "config", "set", "-n", "app1", "--vnet-route-all-enabled", "true"),
        ("network", "nsg", "rule", "create", "--nsg-name", "nsg1", "-n", "deny-web", "--priority", "200",
         "--access", "Deny", "--protocol", "Tcp", "--source-address-prefixes", "10.0.0.128/26",
         "--destination-port-ranges", "80,443"),
        ("webapp", "config", "set", "-n", "app1", "--vnet-route-all-enabled", "false"),
        ("webapp", "vnet-integration", "remove", "-n", "app1"),
        ("network", "vnet", "delete", "-n", "spoke"),
    ]


def _arm_steps(client):
    integration = f"{NET}/virtualNetworks/vnet1/subnets/integration"

    def integrate():
        subnet = client.get(integration).json()  # what az does: delegate the subnet, then integrate
        subnet["properties"]["delegations"] = [{"name": "delegation",
                                                "properties": {"serviceName": "Microsoft.Web/serverFarms"}}]
        assert client.put(integration, json=subnet).status_code == 200
        return client.put(f"{WEB}/sites/app1/networkConfig/virtualNetwork",
                          json={"properties": {"subnetResourceId": integration, "swiftSupported": True}})

    def route_all(on):
        return lambda: client.put(f"{WEB}/sites/app1/config/web", json={"properties": {"vnetRouteAllEnabled": on}})

    rule = {"properties": {"priority": 200, "access": "Deny", "direction": "Inbound", "protocol": "Tcp",
                           "sourceAddressPrefix": "10.0.0.128/26", "sourcePortRange": "*",
                           "destinationAddressPrefix": "*", "destinationPortRanges": ["80", "443"]}}
    return [integrate, route_all(True),
            lambda: client.put(f"{NET}/networkSecurityGroups/nsg1/securityRules/deny-web", json=rule),
            route_all(False),
            lambda: client.delete(f"{WEB}/sites/app1/networkConfig/virtualNetwork"),
            lambda: client.delete(f"{NET}/virtualNetworks/spoke")]


FLOWS = [("app1", "rg1vm1", 80, "Tcp"), ("app1", "rg1vm1", 22, "Tcp"), ("app1", "public-test", 443, "Tcp"),
         ("rg1vm1", "10.1.0.4", 80, "Tcp"), ("app1", "10.1.0.4", None, "Icmp")]


def _traces(lab: Lab) -> list[dict]:
    out = []
    for source, destination, port, protocol in FLOWS:
        try:
            out.append(lab.trace(source, destination, port, protocol).to_dict())
        except Exception as exc:  # noqa: BLE001 - a flow whose endpoint went away: both faces must agree on it
            out.append({"error": getattr(exc, "code", type(exc).__name__)})
    return out


def test_the_cli_and_the_arm_api_make_the_same_lab(tmp_path):
    (tmp_path / "cli").mkdir()
    (tmp_path / "arm").mkdir()
    via_cli = up_note(tmp_path / "cli", _faces_doc())
    via_arm = up_note(tmp_path / "arm", _faces_doc())
    client = arm(via_arm)
    seen_verdicts = set()
    for cli_step, arm_step in zip(_cli_steps(), _arm_steps(client), strict=True):
        res = cli(via_cli, *cli_step)
        assert res.exit_code == 0, res.output
        resp = arm_step()
        assert resp.status_code in (200, 201), resp.text
        cli_lab, arm_lab = Lab.open(via_cli), Lab.open(via_arm)
        assert cli_lab.topology() == arm_lab.topology(), cli_step
        assert _traces(cli_lab) == _traces(arm_lab), cli_step
        seen_verdicts |= {t.get("verdict") for t in _traces(cli_lab)}
    assert {"Connected", "TimedOut"} <= seen_verdicts  # the sequence changes what the flows do
