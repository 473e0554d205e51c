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
