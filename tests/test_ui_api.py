"""The web page's server side without a browser: `vnetlab ui`'s app and the JSON it answers."""

import shutil

import pytest
from starlette.testclient import TestClient

from conftest import build
from vnetlab.lab import Lab
from vnetlab.ui import page_app


def client_for(tmp_path) -> TestClient:
    home = tmp_path / "lab"
    Lab.open(home).up(build())
    return TestClient(page_app(Lab.open(home)))


def test_vnetlab_ui_serves_only_the_page(tmp_path):
    with client_for(tmp_path) as client:
        assert "<title>vnetlab</title>" in client.get("/").text
        assert client.get("/ui/static/app.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/ui/static/secret.txt").status_code == 404
        assert client.get("/ui/api/version").json()["lab"] == "note"
        assert client.get("/subscriptions", params={"api-version": "2022-01-01"}).status_code == 404  # no ARM


def test_resources_trace_and_errors_as_the_lab_answers(tmp_path):
    with client_for(tmp_path) as client:
        vm = client.get("/ui/api/resource", params={"ref": "nic:rg1vm1VMNic"}).json()
        assert vm["name"] == "rg1vm1" and vm["effective_routes"][0]["next_hop_type"] == "VnetLocal"
        traced = client.get("/ui/api/trace", params={"src": "app1", "dst": "rg1vm1", "port": "80"}).json()
        assert traced["verdict"] == "Connected" and traced["source_ip_seen"] == "10.0.0.190"
        assert len(traced["texts"]) == len(traced["steps"]) + len(traced["return_path"])
        missing = client.get("/ui/api/trace", params={"src": "nope", "dst": "rg1vm1"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed (apt-get install graphviz)")
def test_the_picture_is_svg_with_clickable_resources(tmp_path):
    with client_for(tmp_path) as client:
        svg = client.get("/ui/api/graph.svg", params={"src": "app1", "dst": "rg1vm1", "port": "80"})
        assert svg.headers["content-type"] == "image/svg+xml" and 'id="ref:subnet:vnet1/integration"' in svg.text
        assert "trace step" in svg.text and "trace_steps" not in svg.text   # the page lists the steps itself


def test_a_paas_service_and_a_zone_drawn_on_the_picture_answer_with_their_properties(tmp_path):
    from pathlib import Path

    import yaml
    doc = yaml.safe_load((Path(__file__).parent.parent / "examples" / "private-endpoint.yaml").read_text())
    Lab.open(tmp_path / "lab").up(build(doc))
    with TestClient(page_app(Lab.open(tmp_path / "lab"))) as client:
        acct = client.get("/ui/api/resource", params={"ref": "storage_accounts:acct1"}).json()
        assert acct["type"] == "Microsoft.Storage/storageAccounts" and acct["id"].endswith("/storageAccounts/acct1")
        assert acct["properties"]["public_network_access"] == doc["storage_accounts"][0]["public_network_access"]
        zone = client.get("/ui/api/resource", params={"ref": "private_dns_zones:privatelink.blob.core.windows.net"})
        assert zone.json()["type"] == "Microsoft.Network/privateDnsZones"
        assert client.get("/ui/api/resource", params={"ref": "route_tables:x"}).status_code == 404
