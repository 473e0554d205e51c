"""The real az CLI builds a site-to-site VPN with gateway transit (issue 10 section 3): the commands of
the Azure docs, then the engine's answers on the lab they made."""

from __future__ import annotations

import json

import pytest
from test_az_cli import az  # noqa: F401  (the module's az fixture: a server and a logged-in az)

from vnetlab.api.discovery import SUBSCRIPTION

pytestmark = pytest.mark.az
RG = "rg-vpn"


def ids(kind: str, name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Network/{kind}/{name}"


@pytest.fixture(scope="module")
def vpn(az):  # noqa: F811
    az("group", "create", "-n", RG, "-l", "westeurope")
    az("network", "vnet", "create", "-g", RG, "-n", "hub", "--address-prefixes", "10.10.0.0/16",
       "--subnet-name", "vms", "--subnet-prefixes", "10.10.0.0/24")
    az("network", "vnet", "create", "-g", RG, "-n", "spoke", "--address-prefixes", "10.11.0.0/16",
       "--subnet-name", "vms", "--subnet-prefixes", "10.11.0.0/24")
    return az


def test_vnet_gateway_create_needs_the_gateway_subnet(vpn):
    res = vpn("network", "vnet-gateway", "create", "-g", RG, "-n", "gw0", "--vnet", "spoke", "--gateway-type", "Vpn",
              "--vpn-type", "RouteBased", "--sku", "VpnGw1", check=False)
    assert res.returncode != 0 and "GatewaySubnetNotFound" in res.stderr


def test_use_remote_gateways_before_the_hub_has_a_gateway_is_refused(vpn):
    vpn("network", "vnet", "peering", "create", "-g", RG, "-n", "hub-to-spoke", "--vnet-name", "hub",
        "--remote-vnet", "spoke", "--allow-vnet-access", "--allow-gateway-transit")
    res = vpn("network", "vnet", "peering", "create", "-g", RG, "-n", "spoke-to-hub", "--vnet-name", "spoke",
              "--remote-vnet", "hub", "--allow-vnet-access", "--use-remote-gateways", check=False)
    assert res.returncode != 0 and "RemoteVnetHasNoGateways" in res.stderr
    assert "does not have any gateways" in res.stderr


def test_the_docs_commands_build_a_connected_site_to_site_vpn_with_transit(vpn):
    vpn("network", "vnet", "subnet", "create", "-g", RG, "--vnet-name", "hub", "-n", "GatewaySubnet",
        "--address-prefixes", "10.10.255.0/27")
    gw = json.loads(vpn("network", "vnet-gateway", "create", "-g", RG, "-n", "gw1", "--vnet", "hub",
                        "--gateway-type", "Vpn", "--vpn-type", "RouteBased", "--sku", "VpnGw1").stdout)
    gw = gw.get("vnetGateway", gw)
    assert gw["provisioningState"] == "Succeeded" and gw["gatewayType"] == "Vpn"
    assert gw["ipConfigurations"][0]["subnet"]["id"] == ids("virtualNetworks", "hub") + "/subnets/GatewaySubnet"
    vpn("network", "local-gateway", "create", "-g", RG, "-n", "lng-office", "--gateway-ip-address", "198.51.100.7",
        "--local-address-prefixes", "192.168.0.0/16")
    conn = json.loads(vpn("network", "vpn-connection", "create", "-g", RG, "-n", "hub-to-office",
                          "--vnet-gateway1", "gw1", "--local-gateway2", "lng-office", "--shared-key", "abc123").stdout)
    shown = json.loads(vpn("network", "vpn-connection", "show", "-g", RG, "-n", "hub-to-office").stdout)
    assert shown["connectionType"] == "IPsec" and conn is not None
    assert shown["localNetworkGateway2"]["id"] == ids("localNetworkGateways", "lng-office")
    assert shown["connectionStatus"] == "NotConnected"  # no device of the lab answers at 198.51.100.7 yet
    vpn("network", "vnet", "peering", "create", "-g", RG, "-n", "spoke-to-hub", "--vnet-name", "spoke",
        "--remote-vnet", "hub", "--allow-vnet-access", "--use-remote-gateways")
    peering = json.loads(vpn("network", "vnet", "peering", "show", "-g", RG, "-n", "spoke-to-hub",
                             "--vnet-name", "spoke").stdout)
    assert peering["useRemoteGateways"] is True and peering["peeringState"] == "Connected"
    topo = vpn.lab.topology()
    from vnetlab.engine.network import LabView
    routes = LabView(topo).subnet_view("spoke/vms").routes
    assert any(r.address_prefix == "192.168.0.0/16" and r.next_hop_type == "VirtualNetworkGateway" for r in routes)


def test_vnet_gateway_create_with_no_wait_answers_at_once(vpn):
    vpn("network", "vnet", "create", "-g", RG, "-n", "branch", "--address-prefixes", "10.12.0.0/16",
        "--subnet-name", "GatewaySubnet", "--subnet-prefixes", "10.12.255.0/27")
    res = vpn("network", "vnet-gateway", "create", "-g", RG, "-n", "gw-branch", "--vnet", "branch",
              "--gateway-type", "Vpn", "--sku", "VpnGw2", "--no-wait")
    assert res.returncode == 0
    shown = json.loads(vpn("network", "vnet-gateway", "show", "-g", RG, "-n", "gw-branch").stdout)
    assert shown["sku"]["name"] == "VpnGw2" and shown["provisioningState"] == "Succeeded"


def test_vnet_gateway_create_with_a_public_ip_uses_it_and_the_ip_shows_the_gateway(vpn):
    """``--public-ip-addresses PIP``: the gateway's IP configuration holds the public IP (its address is the
    next hop of the gateway's routes), and the public IP's ``ipConfiguration`` names that configuration."""
    vpn("network", "vnet", "create", "-g", RG, "-n", "edge", "--address-prefixes", "10.13.0.0/16",
        "--subnet-name", "GatewaySubnet", "--subnet-prefixes", "10.13.255.0/27")
    pip = json.loads(vpn("network", "public-ip", "create", "-g", RG, "-n", "pip-gw", "--sku", "Standard",
                         "--allocation-method", "Static").stdout)["publicIp"]
    gw = json.loads(vpn("network", "vnet-gateway", "create", "-g", RG, "-n", "gw-edge", "--vnet", "edge",
                        "--gateway-type", "Vpn", "--vpn-type", "RouteBased", "--sku", "VpnGw1",
                        "--public-ip-addresses", "pip-gw").stdout)
    gw = gw.get("vnetGateway", gw)
    config = gw["ipConfigurations"][0]
    assert config["publicIPAddress"]["id"] == ids("publicIPAddresses", "pip-gw")
    shown = json.loads(vpn("network", "public-ip", "show", "-g", RG, "-n", "pip-gw").stdout)
    assert shown["ipConfiguration"]["id"] == config["id"]
    assert config["id"].startswith(ids("virtualNetworkGateways", "gw-edge") + "/ipConfigurations/")
    topo = vpn.lab.topology()
    gateway = topo.find("virtual_network_gateways", "gw-edge")
    assert gateway.public_ip_address == "pip-gw"
    from vnetlab.engine.gateways import next_hop_ip
    assert next_hop_ip(topo, gateway) == pip["ipAddress"] == shown["ipAddress"]
