"""Template deployments through the ARM endpoint: create in dependency order, failure midway (the
resources before stay), validate and what-if on a copy of the lab (nothing written)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from vnetlab.api import create_app
from vnetlab.lab import Lab
from vnetlab.topology import load

DATA = Path(__file__).parent / "data" / "estate"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SUB = "00000000-0000-0000-0000-000000000000"
DEPLOYMENTS = f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Resources/deployments"
API = {"api-version": "2024-11-01"}


@pytest.fixture
def lab_home(tmp_path):
    Lab.open(tmp_path).up(load(EXAMPLES / "app-service-vnet-integration.yaml"))
    return tmp_path


@pytest.fixture
def client(lab_home):
    with TestClient(create_app(lab_home)) as c:
        yield c


def hub_spoke() -> dict:
    doc = json.loads((DATA / "hub-spoke.bicep.json").read_text())
    doc["resources"] = [r for r in doc["resources"] if r["type"] != "Microsoft.Network/publicIPAddresses"]
    return doc


def body(template: dict, **parameters) -> dict:
    return {"properties": {"mode": "Incremental", "template": template,
                           "parameters": {k: {"value": v} for k, v in parameters.items()}}}


def test_a_template_deploys_in_dependency_order_with_its_outputs(client, lab_home):
    answer = client.put(f"{DEPLOYMENTS}/shop", params=API, json=body(hub_spoke()))
    assert answer.status_code == 201, answer.text
    props = answer.json()["properties"]
    assert props["provisioningState"] == "Succeeded"
    ids = [r["id"].split("/providers/")[1] for r in props["outputResources"]]
    assert ids.index("Microsoft.Network/networkSecurityGroups/nsg-shop-app") < \
        ids.index("Microsoft.Network/virtualNetworks/vnet-shop-spoke1") < \
        ids.index("Microsoft.Network/networkInterfaces/vm-appVMNic") < ids.index("Microsoft.Compute/virtualMachines/vm-app")
    assert props["outputs"]["firstSpokeSubnet"]["value"].endswith("/virtualNetworks/vnet-shop-spoke1/subnets/snet-app")
    app = props["outputs"]["appName"]["value"]
    assert props["outputs"]["appId"]["value"].endswith(f"/Microsoft.Web/sites/{app}")
    topo = Lab.open(lab_home).topology()
    assert topo.find("web_apps", app).vnet_integration == "vnet-shop-spoke1/snet-integration"
    assert topo.find("web_apps", "app1") is not None  # incremental: what the template does not name stays


def test_a_failing_resource_fails_the_deployment_and_the_ones_before_stay(client, lab_home):
    template = hub_spoke()
    hub = next(r for r in template["resources"] if r["name"] == "[variables('hubName')]")
    hub["properties"]["subnets"][0]["properties"]["addressPrefix"] = "10.99.0.0/24"  # outside the hub's space
    answer = client.put(f"{DEPLOYMENTS}/broken", params=API, json=body(template))
    assert answer.status_code == 201 and answer.json()["properties"]["provisioningState"] == "Running"
    status = client.get("/" + answer.headers["Azure-AsyncOperation"].split("://", 1)[1].split("/", 1)[1])
    assert status.json()["status"] == "Failed"
    error = status.json()["error"]
    assert error["code"] == "DeploymentFailed"
    assert error["details"][0]["code"] == "NetcfgSubnetRangeOutsideVnet"
    assert error["details"][0]["target"].endswith("/virtualNetworks/vnet-shop-hub")
    shown = client.get(f"{DEPLOYMENTS}/broken", params=API).json()["properties"]
    assert shown["provisioningState"] == "Failed"
    topo = Lab.open(lab_home).topology()
    assert topo.find("network_security_groups", "nsg-shop-app") and topo.find("route_tables", "rt-spokes")
    assert topo.vnet("vnet-shop-hub") is None and topo.find("virtual_machines", "vm-app") is None


def test_an_unsupported_function_fails_template_validation_naming_it(client, lab_home):
    template = hub_spoke()
    template["variables"]["nsgName"] = "[listKeys('x', '2023-01-01').keys[0].value]"
    before = Lab.open(lab_home).store.version()
    answer = client.put(f"{DEPLOYMENTS}/fn", params=API, json=body(template))
    assert answer.status_code == 400  # ARM validates a template's expressions before deploying anything
    assert answer.json()["error"]["code"] == "InvalidTemplate" and "'listKeys'" in answer.json()["error"]["message"]
    assert Lab.open(lab_home).store.version() == before


def test_a_reference_to_nothing_found_while_deploying_fails_the_deployment(client, lab_home):
    template = hub_spoke()
    nic = next(r for r in template["resources"] if r["name"] == "vm-appVMNic")
    nic["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"] = \
        "[reference(resourceId('Microsoft.Network/virtualNetworks', 'vnet-nowhere')).subnets[0].id]"
    assert client.put(f"{DEPLOYMENTS}/ref", params=API, json=body(template)).status_code == 201
    error = client.get(f"{DEPLOYMENTS}/ref", params=API).json()["properties"]["error"]
    assert error["code"] == "DeploymentFailed" and error["details"][0]["code"] == "ResourceNotFound"
    assert "vnet-nowhere" in error["details"][0]["message"]
    assert Lab.open(lab_home).topology().vnet("vnet-shop-spoke1") is not None  # deployed before it: stays


def test_validate_is_arms_preflight_and_writes_nothing(client, lab_home):
    before = Lab.open(lab_home).store.version()
    good = client.post(f"{DEPLOYMENTS}/shop/validate", params=API, json=body(hub_spoke(), spokeCount=1))
    assert good.status_code == 200, good.text
    assert any(r["id"].endswith("/virtualNetworks/vnet-shop-spoke1") for r in
               good.json()["properties"]["validatedResources"])
    not_allowed = client.post(f"{DEPLOYMENTS}/shop/validate", params=API, json=body(hub_spoke(), prefix="erp"))
    assert not_allowed.status_code == 400
    assert not_allowed.json()["error"]["code"] == "InvalidTemplateDeployment"
    assert "allowed value" in not_allowed.json()["error"]["details"][0]["message"]
    template = hub_spoke()
    template["resources"][0]["properties"]["securityRules"][0]["properties"]["priority"] = "[parameters('nope')]"
    bad = client.post(f"{DEPLOYMENTS}/shop/validate", params=API, json=body(template))
    assert bad.status_code == 400 and bad.json()["error"]["details"][0]["code"] == "InvalidTemplate"
    # a resource's own rules are its provider's: met when it is deployed (what-if tries it whole)
    template = hub_spoke()
    template["resources"][0]["properties"]["securityRules"][0]["properties"]["priority"] = 5
    assert client.post(f"{DEPLOYMENTS}/shop/validate", params=API, json=body(template)).status_code == 200
    refused = client.post(f"{DEPLOYMENTS}/shop/whatIf", params=API, json=body(template))
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "SecurityRuleInvalidPriority"
    assert Lab.open(lab_home).store.version() == before


def changes_of(client, template: dict, **parameters) -> dict[str, dict]:
    answer = client.post(f"{DEPLOYMENTS}/shop/whatIf", params=API, json=body(template, **parameters))
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "Succeeded"
    return {c["resourceId"].rsplit("/", 1)[1]: c for c in answer.json()["properties"]["changes"]}


def test_what_if_names_creates_modifies_and_no_changes(client, lab_home):
    template = hub_spoke()
    template["resources"].append({"type": "Microsoft.Network/loadBalancers", "name": "lb", "location": "westeurope",
                                  "properties": {}})
    before = Lab.open(lab_home).store.version()
    first = changes_of(client, template)
    assert first["nsg-shop-app"]["changeType"] == "Create" and first["nsg-shop-app"]["before"] is None
    assert first["lb"]["changeType"] == "Unsupported"
    assert Lab.open(lab_home).store.version() == before
    assert client.put(f"{DEPLOYMENTS}/shop", params=API, json=body(hub_spoke())).status_code == 201
    changed = copy.deepcopy(hub_spoke())
    changed["resources"][0]["properties"]["securityRules"][0]["properties"]["destinationPortRange"] = "8443"
    second = changes_of(client, changed)
    assert second["vnet-shop-hub"]["changeType"] == "NoChange"
    nsg = second["nsg-shop-app"]
    assert nsg["changeType"] == "Modify"
    assert [(d["path"], d["before"], d["after"]) for d in nsg["delta"]] == \
        [("security_rules[allow-https].destination_port_range", "443", "8443")]
    assert nsg["after"]["properties"]["securityRules"][0]["properties"]["destinationPortRange"] == "8443"


def test_a_model_refusal_inside_a_template_fails_on_its_resource(client, lab_home):
    template = {"resources": [
        {"type": "Microsoft.Network/routeTables", "name": "rt-ok", "location": "westeurope", "properties": {}},
        {"type": "Microsoft.Network/virtualNetworks", "name": "vnet-x", "location": "westeurope", "dependsOn": ["rt-ok"],
         "properties": {"addressSpace": {"addressPrefixes": ["10.60.0.1/16"]}}}]}
    assert client.put(f"{DEPLOYMENTS}/cidr", params=API, json=body(template)).status_code == 201
    error = client.get(f"{DEPLOYMENTS}/cidr", params=API).json()["properties"]["error"]
    assert error["details"][0]["code"] == "InvalidCIDRNotation"
    assert error["details"][0]["target"].endswith("/virtualNetworks/vnet-x")
    topo = Lab.open(lab_home).topology()
    assert topo.find("route_tables", "rt-ok") is not None and topo.vnet("vnet-x") is None


def test_reference_to_a_resource_of_the_template_by_its_name_gives_that_resource(client):
    """az's own templates (vpn-connection create) output "[reference('NAME')]": the resource, not a deployment."""
    template = {"$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
                "contentVersion": "1.0.0.0",
                "resources": [{"type": "Microsoft.Network/routeTables", "apiVersion": "2024-07-01", "name": "rt-ref",
                               "location": "westeurope", "properties": {"disableBgpRoutePropagation": True}}],
                "outputs": {"resource": {"type": "object", "value": "[reference('rt-ref')]"}}}
    answer = client.put(f"{DEPLOYMENTS}/byname", params=API, json=body(template))
    assert answer.status_code == 201, answer.text
    props = answer.json()["properties"]
    assert props["provisioningState"] == "Succeeded", props
    assert props["outputs"]["resource"]["value"]["disableBgpRoutePropagation"] is True
