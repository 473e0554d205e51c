"""The ARM template language (vnetlab.api.template): functions, copy loops, conditions, dependsOn order,
reference(), nested deployments, and the errors Azure gives for what it cannot evaluate."""

from __future__ import annotations

import re

import pytest

from vnetlab.api.template import Scope, run, unique_string
from vnetlab.model.errors import AzureError

SUB = "00000000-0000-0000-0000-000000000000"
SCOPE = Scope(SUB, "rg1", "westeurope", "dep1")
NSG = "Microsoft.Network/networkSecurityGroups"


class Recorder:
    """A target that keeps what it is given, in order; reference() reads it back."""

    def __init__(self):
        self.order: list[str] = []
        self.docs: dict[str, dict] = {}

    def put(self, resource, body: dict) -> None:
        self.order.append(resource.name)
        self.docs[resource.id.lower()] = {"id": resource.id, "name": resource.name, **body}

    def get(self, resource_id: str) -> dict | None:
        return self.docs.get(resource_id.lower())


def deploy(resources: list, parameters: dict | None = None, variables: dict | None = None, outputs: dict | None = None,
           given: dict | None = None) -> tuple[dict, Recorder]:
    target = Recorder()
    doc = {"$schema": "x", "contentVersion": "1.0.0.0", "parameters": parameters or {}, "variables": variables or {},
           "resources": resources, "outputs": outputs or {}}
    out, _ = run(doc, given or {}, SCOPE, target)
    return {k: v["value"] for k, v in out.items()}, target


def value(expression: str, **kw):
    out, _ = deploy([], outputs={"v": {"type": "object", "value": expression}}, **kw)
    return out["v"]


def nsg(name: str, **extra) -> dict:
    return {"type": NSG, "apiVersion": "2024-05-01", "name": name, "location": "westeurope", "properties": {}, **extra}


@pytest.mark.parametrize("expression, expected", [
    ("[concat('a', 'b', 1)]", "ab1"),
    ("[concat(createArray(1), createArray(2, 3))]", [1, 2, 3]),
    ("[format('{0}-{1:D3}', 'vm', 7)]", "vm-007"),
    ("[toLower('NSG-App')]", "nsg-app"),
    ("[toUpper('a')]", "A"),
    ("[if(equals(1, 2), 'yes', 'no')]", "no"),
    ("[if(true(), 'kept', reference('not-deployed'))]", "kept"),  # only the branch taken is evaluated
    ("[length(split('a,b,c', ','))]", 3),
    ("[replace('a-b', '-', '_')]", "a_b"),
    ("[cidrSubnet('10.0.0.0/16', 24, 3)]", "10.0.3.0/24"),
    ("[resourceGroup().location]", "westeurope"),
    ("[subscription().subscriptionId]", SUB),
    ("[resourceId('Microsoft.Network/virtualNetworks/subnets', 'v', 's')]",
     f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Network/virtualNetworks/v/subnets/s"),
    ("[resourceId('rg2', 'Microsoft.Web/sites', 'app')]",
     f"/subscriptions/{SUB}/resourceGroups/rg2/providers/Microsoft.Web/sites/app"),
    ("[resourceId('sub2', 'rg2', 'Microsoft.Web/sites', 'app')]",
     "/subscriptions/sub2/resourceGroups/rg2/providers/Microsoft.Web/sites/app"),
    ("[union(createObject('a', 1), createObject('b', 2)).b]", 2),
    ("[coalesce(null(), 'x')]", "x"),
    ("[and(true(), not(false()), or(false(), true()))]", True),
    ("[createObject('subnets', createArray(createObject('id', 'x')))].subnets[0].id", None),
    ("[createObject('subnets', createArray(createObject('id', 'x'))).subnets[0].id]", "x"),
    ("[string(add(int('40'), 2))]", "42"),
    ("[['literal']", "['literal']"),
    ("[concat('it''s', ' ok')]", "it's ok"),
    ("[deployment().name]", "dep1"),
])
def test_functions(expression, expected):
    if expected is None:  # not an expression: a literal string that ends differently
        assert value(expression) == expression
        return
    assert value(expression) == expected


def test_unique_string_and_guid_are_stable_and_shaped_as_azures():
    assert unique_string("a", "b") == value("[uniqueString('a', 'b')]")
    assert re.fullmatch(r"[a-z2-7]{13}", unique_string("x")) and unique_string("x") != unique_string("y")
    first = value("[guid(resourceGroup().id, 'reader')]")
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}", first)
    assert first == value("[guid(resourceGroup().id, 'reader')]") != value("[guid('other')]")


def test_parameters_defaults_given_values_and_variables():
    params = {"name": {"type": "string", "defaultValue": "[concat('nsg-', resourceGroup().name)]"},
              "size": {"type": "int", "defaultValue": 1}}
    out, _ = deploy([], params, {"upper": "[toUpper(parameters('name'))]"},
                    {"u": {"type": "string", "value": "[variables('upper')]"},
                     "s": {"type": "int", "value": "[parameters('size')]"}}, {"size": {"value": 3}})
    assert out == {"u": "NSG-RG1", "s": 3}


def test_a_parameter_without_value_or_default_and_a_value_not_allowed():
    with pytest.raises(AzureError, match="The value for the template parameter 'name' is not provided"):
        deploy([], {"name": {"type": "string"}})
    with pytest.raises(AzureError, match="not part of the allowed value"):
        deploy([], {"sku": {"type": "string", "allowedValues": ["P1v3"]}}, given={"sku": {"value": "F1"}})


def test_a_function_vnetlab_does_not_support_is_named():
    with pytest.raises(AzureError, match="'listKeys' is not valid") as err:
        value("[listKeys('x', '2023-01-01')]")
    assert err.value.code == "InvalidTemplate"


def test_copy_loops_on_resources_properties_and_variables():
    loop = nsg("[format('nsg-{0}', copyIndex(1))]", copy={"name": "nsgs", "count": 3},
               properties={"copy": [{"name": "securityRules", "count": "[add(copyIndex(), 1)]",
                                     "input": {"name": "[format('r{0}', copyIndex('securityRules'))]"}}]})
    out, target = deploy([loop], variables={"copy": [{"name": "ports", "count": 2,
                                                      "input": "[add(80, copyIndex('ports'))]"}]},
                         outputs={"p": {"type": "array", "value": "[variables('ports')]"}})
    assert target.order == ["nsg-1", "nsg-2", "nsg-3"]
    rules = [[r["name"] for r in target.docs[f"/subscriptions/{SUB}/resourcegroups/rg1/providers/"
                                               f"microsoft.network/networksecuritygroups/nsg-{i}"]
              ["properties"]["securityRules"]] for i in (1, 2, 3)]
    assert rules == [["r0"], ["r0", "r1"], ["r0", "r1", "r2"]]
    assert out == {"p": [80, 81]}


def test_condition_false_leaves_a_resource_out():
    _, target = deploy([nsg("a", condition="[equals(1, 2)]"), nsg("b", dependsOn=["a"])])
    assert target.order == ["b"]


def test_dependencies_first_by_id_name_or_loop_template_order_otherwise():
    resources = [nsg("last", dependsOn=["web"]),
                 nsg("[format('web{0}', copyIndex())]", copy={"name": "web", "count": 2}, dependsOn=[
                     f"[resourceId('{NSG}', 'base')]"]),
                 nsg("base"), nsg("free")]
    _, target = deploy(resources)
    assert target.order == ["base", "web0", "web1", "last", "free"]


def test_child_resources_nested_in_their_parent_and_at_the_top_level():
    parent = nsg("n1", resources=[{"type": "securityRules", "name": "r1", "properties": {"priority": 100}}])
    top_child = {"type": f"{NSG}/securityRules", "name": "n1/r2", "properties": {}, "dependsOn": ["n1"]}
    _, target = deploy([top_child, parent])
    assert target.order[0] == "n1" and sorted(target.order[1:]) == ["n1/r1", "n1/r2"]  # the parent first


def test_a_dependency_cycle_is_refused():
    with pytest.raises(AzureError, match="Circular dependency detected"):
        deploy([nsg("a", dependsOn=["b"]), nsg("b", dependsOn=["a"])])


def test_reference_reads_a_deployed_resource_with_property_access():
    vnet = {"type": "Microsoft.Network/virtualNetworks", "name": "v", "location": "westeurope",
            "properties": {"subnets": [{"id": "SUBNET-ID", "name": "s"}]}}
    nic = {"type": "Microsoft.Network/networkInterfaces", "name": "nic", "dependsOn": ["v"],
           "properties": {"subnet": "[reference(resourceId('Microsoft.Network/virtualNetworks', 'v'), "
                                    "'2024-05-01').subnets[0].id]",
                          "where": "[reference(resourceId('Microsoft.Network/virtualNetworks', 'v'), '2024-05-01', "
                                   "'Full').location]"}}
    _, target = deploy([nic, vnet])
    assert target.docs[next(k for k in target.docs if k.endswith("/nic"))]["properties"] == \
        {"subnet": "SUBNET-ID", "where": "westeurope"}


def test_reference_to_what_is_not_deployed_fails_as_azure_does():
    with pytest.raises(AzureError, match="was not found") as err:
        deploy([nsg("a", properties={"x": "[reference(resourceId('Microsoft.Network/virtualNetworks', 'nope'))]"})])
    assert err.value.code == "ResourceNotFound"


def test_nested_deployments_inner_and_outer_scope_and_their_outputs():
    inner = {"type": "Microsoft.Resources/deployments", "name": "inner", "dependsOn": ["first"],
             "properties": {"mode": "Incremental", "expressionEvaluationOptions": {"scope": "inner"},
                            "parameters": {"n": {"value": "[concat(variables('prefix'), '-inner')]"}},
                            "template": {"parameters": {"n": {"type": "string"}},
                                         "resources": [nsg("[parameters('n')]")],
                                         "outputs": {"made": {"type": "string", "value": "[parameters('n')]"}}}}}
    outer = {"type": "Microsoft.Resources/deployments", "name": "outer",
             "properties": {"template": {"resources": [nsg("[concat(variables('prefix'), '-outer')]")]}}}
    out, target = deploy([inner, outer, nsg("first")], variables={"prefix": "p"},
                         outputs={"o": {"type": "string", "value": "[reference('inner').outputs.made.value]"}})
    assert target.order == ["first", "p-inner", "p-outer"]
    assert out == {"o": "p-inner"}


def test_a_failing_resource_stops_the_deployment_where_it_is():
    class Refusing(Recorder):
        def put(self, resource, body):
            if resource.name == "bad":
                raise AzureError("refused", "SomeCode")
            super().put(resource, body)

    target = Refusing()
    doc = {"resources": [nsg("a"), nsg("bad", dependsOn=["a"]), nsg("c", dependsOn=["bad"])]}
    with pytest.raises(AzureError, match="refused"):
        run(doc, {}, SCOPE, target)
    assert target.order == ["a"]
