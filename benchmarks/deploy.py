"""Benchmark: a template of 500 resources deployed through the ARM endpoint (issue 11, goal under 10 s),
and the same template imported (``vnetlab import``).

    .venv/bin/python benchmarks/deploy.py [--vnets 20] [--subnets 10] [--nsgs 100] [--vms 100]

The template uses what real ones do: copy loops, child resources at the top level, dependsOn,
resourceId(), format(), reference() to a subnet id. Every resource is PUT through the endpoint's own
reading (in process: the ASGI app without TLS) in dependency order, in one transaction checked once
(a refusal replays it one PUT at a time: see Deployments.at_once).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from starlette.testclient import TestClient

from vnetlab.api import create_app, estate
from vnetlab.lab import Lab
from vnetlab.model import Topology

SUB = "00000000-0000-0000-0000-000000000000"


def template(vnets: int, subnets: int, nsgs: int, vms: int) -> dict:
    net = "Microsoft.Network"
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"location": {"type": "string", "defaultValue": "[resourceGroup().location]"}},
        "resources": [
            {"copy": {"name": "nsgs", "count": nsgs}, "type": f"{net}/networkSecurityGroups", "apiVersion": "2024-05-01",
             "name": "[format('nsg-{0}', copyIndex())]", "location": "[parameters('location')]",
             "properties": {"securityRules": [{"name": "allow-http", "properties": {
                 "priority": 100, "direction": "Inbound", "access": "Allow", "protocol": "Tcp",
                 "sourceAddressPrefix": "VirtualNetwork", "sourcePortRange": "*",
                 "destinationAddressPrefix": "*", "destinationPortRange": "80"}}]}},
            {"copy": {"name": "vnets", "count": vnets}, "type": f"{net}/virtualNetworks", "apiVersion": "2024-05-01",
             "name": "[format('vnet-{0}', copyIndex())]", "location": "[parameters('location')]",
             "properties": {"addressSpace": {"addressPrefixes": ["[format('10.{0}.0.0/16', copyIndex())]"]}}},
            {"copy": {"name": "subnets", "count": vnets * subnets, "mode": "serial", "batchSize": 1},
             "type": f"{net}/virtualNetworks/subnets", "apiVersion": "2024-05-01",
             "name": f"[format('vnet-{{0}}/snet-{{1}}', div(copyIndex(), {subnets}), mod(copyIndex(), {subnets}))]",
             "dependsOn": ["vnets", "nsgs"],
             "properties": {"addressPrefix": f"[format('10.{{0}}.{{1}}.0/24', div(copyIndex(), {subnets}), "
                                             f"mod(copyIndex(), {subnets}))]",
                            "networkSecurityGroup": {"id": f"[resourceId('{net}/networkSecurityGroups', "
                                                           f"format('nsg-{{0}}', mod(copyIndex(), {nsgs})))]"}}},
            {"copy": {"name": "nics", "count": vms}, "type": f"{net}/networkInterfaces", "apiVersion": "2024-05-01",
             "name": "[format('vm-{0}-nic', copyIndex())]", "location": "[parameters('location')]",
             "dependsOn": ["subnets"],
             "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
                 "privateIPAllocationMethod": "Dynamic",
                 "subnet": {"id": f"[reference(resourceId('{net}/virtualNetworks', format('vnet-{{0}}', "
                                  f"mod(copyIndex(), {vnets})))).subnets[0].id]"}}}]}},
            {"copy": {"name": "vms", "count": vms}, "type": "Microsoft.Compute/virtualMachines",
             "apiVersion": "2024-07-01", "name": "[format('vm-{0}', copyIndex())]",
             "location": "[parameters('location')]", "tags": {"vnetlab-services": "80/Tcp"},
             "dependsOn": ["[resourceId('Microsoft.Network/networkInterfaces', format('vm-{0}-nic', copyIndex()))]"],
             "properties": {"hardwareProfile": {"vmSize": "Standard_B1s"}, "networkProfile": {"networkInterfaces": [
                 {"id": "[resourceId('Microsoft.Network/networkInterfaces', format('vm-{0}-nic', copyIndex()))]"}]}}},
        ]}


def deploy(doc: dict) -> tuple[float, dict]:
    with tempfile.TemporaryDirectory() as home:
        Lab.open(home).up(Topology(name="bench", resource_groups=[{"name": "rg1", "location": "westeurope"}]))
        with TestClient(create_app(Path(home))) as client:
            started = time.perf_counter()
            answer = client.put(f"/subscriptions/{SUB}/resourceGroups/rg1/providers/Microsoft.Resources/deployments/"
                                "bench", params={"api-version": "2024-11-01"},
                                json={"properties": {"mode": "Incremental", "template": doc}})
            elapsed = time.perf_counter() - started
        props = answer.json()["properties"]
        if props["provisioningState"] != "Succeeded":
            sys.exit(f"deployment failed: {json.dumps(props.get('error'))[:2000]}")
        return elapsed, props


def import_(doc: dict) -> float:
    with tempfile.TemporaryDirectory() as home:
        path = Path(home) / "t.json"
        path.write_text(json.dumps(doc))
        started = time.perf_counter()
        topo, _report = estate.build(estate.read([path]), "bench", "rg1")
        Lab.open(Path(home) / "lab").up(topo)
        return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vnets", type=int, default=20)
    ap.add_argument("--subnets", type=int, default=10)
    ap.add_argument("--nsgs", type=int, default=100)
    ap.add_argument("--vms", type=int, default=90)
    args = ap.parse_args()
    doc = template(args.vnets, args.subnets, args.nsgs, args.vms)
    elapsed, props = deploy(doc)
    count = len(props["outputResources"])
    print(f"deployment: {count} resources in {elapsed:.2f} s ({count / elapsed:.0f}/s; goal: 500 in under 10 s)")
    print(f"import of the same template: {import_(doc):.2f} s")


if __name__ == "__main__":
    main()
