"""The error family: one base with keyword arguments, one class per shared code; the CLI answers
any of them (a backend failure included) with exit 2 and no traceback, the API with its status."""

import ssl

import httpx
import pytest

from vnetlab.api import ServerThread, create_app, ensure_tls
from vnetlab.api.discovery import SUBSCRIPTION
from vnetlab.lab import Lab
from vnetlab.model import errors
from vnetlab.model.errors import AzureError, BackendError, ResourceNotFound

from conftest import cli, up_note

SUB = f"/subscriptions/{SUBSCRIPTION}"


@pytest.fixture
def http(tmp_path):
    """An ARM endpoint on a lab of its own."""
    home = tmp_path / "lab"
    tls = ensure_tls(home)
    with ServerThread(create_app(home), tls) as url:
        with httpx.Client(base_url=url, verify=ssl.create_default_context(cafile=str(tls.ca)), timeout=30) as client:
            yield client


def test_a_class_fixes_code_and_status_and_builds_its_message_from_keywords():
    err = ResourceNotFound(type="Microsoft.Web/sites", name="app9", group="rg1")
    assert (err.code, err.status) == ("ResourceNotFound", 404)
    assert err.message.startswith("The Resource 'Microsoft.Web/sites/app9' under resource group 'rg1' was not found.")
    assert err.details == {"type": "Microsoft.Web/sites", "name": "app9", "group": "rg1"}
    assert err.to_body() == {"error": {"code": "ResourceNotFound", "message": err.message}}


def test_a_one_off_code_is_the_base_with_message_and_code():
    err = AzureError("Unknown backend 'x'.", "InvalidBackend")
    assert (err.code, err.status, str(err)) == ("InvalidBackend", 400, "(InvalidBackend) Unknown backend 'x'.")


def test_each_class_has_its_own_code():
    family = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, AzureError)
              and c is not AzureError]
    codes = [c.code for c in family]
    assert len(codes) == len(set(codes)), codes


def test_the_cli_answers_a_backend_failure_with_exit_2_and_its_message(tmp_path, monkeypatch):
    home = up_note(tmp_path)

    def broken(home):
        raise BackendError("ip netns del vl-x failed: Device or resource busy")

    monkeypatch.setattr(Lab, "open", broken)  # outside any command's own handling: the top level answers
    res = cli(home, "down")
    assert res.exit_code == 2 and isinstance(res.exception, SystemExit)
    assert "(EmulationError) ip netns del vl-x failed" in res.output


def test_the_cli_answers_an_unknown_name_with_the_resource_not_found_code(tmp_path):
    home = up_note(tmp_path)
    res = cli(home, "check", "nosuchvm", "10.0.0.4", "--port", "80")
    assert res.exit_code == 2 and "(ResourceNotFound)" in res.output


def test_the_api_answers_a_backend_failure_with_500_and_its_code(http, monkeypatch):
    def broken(self, *args, **kwargs):
        raise BackendError("probe in vl-x failed")

    monkeypatch.setattr(Lab, "change", broken)
    res = http.put(f"{SUB}/resourcegroups/rg1", params={"api-version": "2021-04-01"},
                     json={"location": "westeurope"})
    assert res.status_code == 500
    assert res.json() == {"error": {"code": "EmulationError", "message": "probe in vl-x failed"}}


@pytest.mark.parametrize("path,code,status", [
    ("/resourcegroups/nope/providers/Microsoft.Network/virtualNetworks/v1", "ResourceGroupNotFound", 404),
    ("/resourcegroups/nope/providers/Microsoft.Web/sites/app9", "ResourceGroupNotFound", 404),
    ("/nothing/here", "NotFound", 404),
])
def test_the_api_answers_shared_codes_with_their_status(http, path, code, status):
    res = http.get(SUB + path, params={"api-version": "2024-07-01"})
    assert (res.status_code, res.json()["error"]["code"]) == (status, code)


_GONE = "The Resource '{}' under resource group 'RgOne' was not found. " \
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix"


@pytest.mark.parametrize("method,path,missing", [
    ("GET", "Microsoft.Network/virtualNetworks/v9/subnets/s1", "Microsoft.Network/virtualNetworks/v9"),
    ("PUT", "Microsoft.Network/virtualNetworks/v9/subnets/s1", "Microsoft.Network/virtualNetworks/v9"),
    ("GET", "Microsoft.Network/privateEndpoints/pe9/privateDnsZoneGroups/default",
     "Microsoft.Network/privateEndpoints/pe9"),
    ("GET", "Microsoft.Network/privateDnsZones/z9.example/A/www", "Microsoft.Network/privateDnsZones/z9.example"),
    ("GET", "Microsoft.Storage/storageAccounts/st9/privateEndpointConnections", "Microsoft.Storage/storageAccounts/st9"),
    ("GET", "Microsoft.Web/sites/app9/config/web", "Microsoft.Web/sites/app9"),
    ("PUT", "Microsoft.Web/sites/app9/config/web", "Microsoft.Web/sites/app9"),
    ("GET", "Microsoft.Compute/virtualMachines/vm9/instanceView", "Microsoft.Compute/virtualMachines/vm9"),
    ("POST", "Microsoft.Compute/virtualMachines/vm9/deallocate", "Microsoft.Compute/virtualMachines/vm9"),
    ("POST", "Microsoft.Web/sites/app9/stop", "Microsoft.Web/sites/app9"),
])
def test_a_missing_parent_is_one_404_whatever_the_handler(http, method, path, missing):
    """Each handler that reaches a resource by its path answers Azure's ResourceNotFound, naming the
    group as it was created, or ResourceGroupNotFound as the path spells the group."""
    api = {"api-version": "2024-05-01"}
    http.put(f"{SUB}/resourcegroups/RgOne", params=api, json={"location": "westeurope"}).raise_for_status()
    res = http.request(method, f"{SUB}/resourcegroups/rgone/providers/{path}", params=api, json={"properties": {}})
    assert (res.status_code, res.json()) == (404, {"error": {"code": "ResourceNotFound",
                                                             "message": _GONE.format(missing)}})
    res = http.request(method, f"{SUB}/resourcegroups/Nope/providers/{path}", params=api, json={"properties": {}})
    assert (res.status_code, res.json()) == (404, {"error": {"code": "ResourceGroupNotFound",
                                                             "message": "Resource group 'Nope' could not be found."}})


@pytest.mark.parametrize("method,path", [("GET", ""), ("PATCH", ""), ("DELETE", ""), ("GET", "/resources"),
                                         ("POST", "/exportTemplate")])
def test_a_missing_group_is_resource_group_not_found_whatever_the_handler(http, method, path):
    res = http.request(method, f"{SUB}/resourcegroups/Nope{path}", params={"api-version": "2021-04-01"}, json={})
    assert (res.status_code, res.json()) == (404, {"error": {"code": "ResourceGroupNotFound",
                                                             "message": "Resource group 'Nope' could not be found."}})
