"""The real Azure SDK for Python drives the ARM endpoint over TLS (real-clients.md section 6):
the note's lab is built with azure-mgmt-* model classes, the app is integrated, and the answers
are checked through the SDK, through Network Watcher, and through the lab itself (lab.trace)."""

from __future__ import annotations

import time

import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.network import NetworkManagementClient
from azure.mgmt.network import models as N
from azure.mgmt.resource.resources import ResourceManagementClient
from azure.mgmt.resource.resources import models as R
from azure.mgmt.web import WebSiteManagementClient
from azure.mgmt.web import models as W

from vnetlab.api import ServerThread, create_app, ensure_tls
from vnetlab.api.discovery import SUBSCRIPTION
from vnetlab.lab import Lab

LOC = "westeurope"
RG = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg1"
VM_ID = f"{RG}/providers/Microsoft.Compute/virtualMachines/rg1vm1"
WATCHER = ("NetworkWatcherRG", "NetworkWatcher_westeurope")


class FakeCred:
    def get_token(self, *scopes, **kw):
        return AccessToken("fake-token", int(time.time()) + 3600)


class Clients:
    def __init__(self, url: str, ca: str, home):
        kw = dict(base_url=url, connection_verify=ca, polling_interval=0)
        self.net = NetworkManagementClient(FakeCred(), SUBSCRIPTION, **kw)
        self.web = WebSiteManagementClient(FakeCred(), SUBSCRIPTION, **kw)
        self.res = ResourceManagementClient(FakeCred(), SUBSCRIPTION, **kw)
        self.lab = Lab.open(home)  # the same lab the CLI shows


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    """The endpoint's certificates: shared by the module's servers, they hold no lab state."""
    return ensure_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def az(tmp_path, tls):
    """The SDK clients on an endpoint serving a lab of this test's own."""
    home = tmp_path / "lab"
    with ServerThread(create_app(home), tls) as url:
        yield Clients(url, str(tls.ca), home)


def create_vm(az: Clients, name: str, nic_id: str, services: str = "80/Tcp"):
    """No azure-mgmt-compute here: the resource SDK's generic PUT sends the same wire body."""
    body = R.GenericResource(location=LOC, tags={"vnetlab-services": services},
                             properties={"hardwareProfile": {"vmSize": "Standard_B1s"},
                                         "networkProfile": {"networkInterfaces": [{"id": nic_id}]}})
    rid = f"{RG}/providers/Microsoft.Compute/virtualMachines/{name}"
    return az.res.resources.begin_create_or_update_by_id(rid, api_version="2024-07-01", parameters=body).result()


@pytest.fixture
def note(az):
    """The field note's lab: vnet1 10.0.0.0/24 with a VM subnet (NSG denying 443 to the VM) and a
    delegated integration subnet, VM rg1vm1 listening on 80, plan1 (P1v3 Linux) and app1."""
    az.res.resource_groups.create_or_update("rg1", R.ResourceGroup(location=LOC))
    vnet = az.net.virtual_networks.begin_create_or_update(
        "rg1", "vnet1", N.VirtualNetwork(location=LOC, address_space=N.AddressSpace(address_prefixes=["10.0.0.0/24"]))
    ).result()
    nsg = az.net.network_security_groups.begin_create_or_update(
        "rg1", "nsg-vm", N.NetworkSecurityGroup(location=LOC)).result()
    az.net.security_rules.begin_create_or_update(
        "rg1", "nsg-vm", "deny-https",
        N.SecurityRule(protocol="Tcp", destination_port_range="443", direction="Inbound", source_port_range="*",
                       access="Deny", source_address_prefix="*", destination_address_prefix="10.0.0.4",
                       priority=100)).result()
    vm_subnet = az.net.subnets.begin_create_or_update(
        "rg1", "vnet1", "default",
        N.Subnet(address_prefix="10.0.0.0/26", network_security_group=N.NetworkSecurityGroup(id=nsg.id))).result()
    integration = az.net.subnets.begin_create_or_update(
        "rg1", "vnet1", "integration",
        N.Subnet(address_prefix="10.0.0.128/26",
                 delegations=[N.Delegation(name="webdel", service_name="Microsoft.Web/serverFarms")])).result()
    nic = az.net.network_interfaces.begin_create_or_update(
        "rg1", "rg1vm1VMNic",
        N.NetworkInterface(location=LOC, ip_configurations=[
            N.NetworkInterfaceIPConfiguration(name="ipconfig1", subnet=N.Subnet(id=vm_subnet.id))])).result()
    create_vm(az, "rg1vm1", nic.id)
    plan = az.web.app_service_plans.begin_create_or_update(
        "rg1", "plan1", W.AppServicePlan(location=LOC, sku=W.SkuDescription(name="P1v3", tier="PremiumV3"),
                                         kind="linux", reserved=True)).result()
    site = az.web.web_apps.begin_create_or_update(
        "rg1", "app1", W.Site(location=LOC, server_farm_id=plan.id,
                              site_config=W.SiteConfig(linux_fx_version="DOCKER|nginx:latest"))).result()
    return {"vnet": vnet, "nsg": nsg, "vm_subnet": vm_subnet, "integration": integration, "nic": nic, "plan": plan,
            "site": site}


@pytest.fixture
def integrated(az, note):
    """app1 integrated with vnet1/integration through the swift networkConfig the SDK uses."""
    before = az.lab.trace("app1", "rg1vm1", 80)
    swift = az.web.web_apps.create_or_update_swift_virtual_network_connection_with_check(
        "rg1", "app1", W.SwiftVirtualNetwork(subnet_resource_id=note["integration"].id, swift_supported=True))
    return {"before": before, "swift": swift}


# -- building ---------------------------------------------------------------------------------------

def test_canonical_ids_names_types_and_state(note):
    assert note["vnet"].id == f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1"
    assert note["vnet"].provisioning_state == "Succeeded" and note["vnet"].etag.startswith('W/"')
    assert note["integration"].type == "Microsoft.Network/virtualNetworks/subnets"
    assert note["integration"].delegations[0].actions == ["Microsoft.Network/virtualNetworks/subnets/action"]
    assert note["vm_subnet"].network_security_group.id == note["nsg"].id
    assert note["plan"].type == "Microsoft.Web/serverfarms" and note["plan"].reserved is True
    assert note["plan"].sku.tier == "PremiumV3"
    assert note["site"].id == f"{RG}/providers/Microsoft.Web/sites/app1"
    assert note["site"].server_farm_id.lower() == note["plan"].id.lower()


def test_dynamic_nic_gets_the_first_usable_address(note):
    assert note["nic"].ip_configurations[0].private_ip_address == "10.0.0.4"
    assert note["nic"].ip_configurations[0].private_ip_allocation_method == "Dynamic"


def test_children_are_embedded_in_their_parent(az, note):
    vnet = az.net.virtual_networks.get("rg1", "vnet1")
    assert [s.name for s in vnet.subnets] == ["default", "integration"]
    nsg = az.net.network_security_groups.get("rg1", "nsg-vm")
    assert [r.name for r in nsg.security_rules] == ["deny-https"]
    assert len(nsg.default_security_rules) == 6
    assert nsg.subnets[0].id == note["vm_subnet"].id
    subnet = az.net.subnets.get("rg1", "vnet1", "default")
    assert subnet.ip_configurations[0].id == note["nic"].id + "/ipConfigurations/ipconfig1"


def test_lists(az, note):
    assert [v.name for v in az.net.virtual_networks.list("rg1")] == ["vnet1"]
    assert "vnet1" in [v.name for v in az.net.virtual_networks.list_all()]
    assert [s.name for s in az.net.subnets.list("rg1", "vnet1")] == ["default", "integration"]
    assert [r.name for r in az.net.security_rules.list("rg1", "nsg-vm")] == ["deny-https"]
    assert "plan1" in [p.name for p in az.web.app_service_plans.list_by_resource_group("rg1")]
    assert "app1" in [s.name for s in az.web.web_apps.list_by_resource_group("rg1")]


def test_the_lab_holds_what_the_sdk_built(az, note):
    topo = az.lab.topology()
    assert topo.vnet("vnet1").subnet("integration").delegated_to("Microsoft.Web/serverFarms")
    assert topo.find("virtual_machines", "rg1vm1").services[0].port == 80
    assert topo.find("app_service_plans", "plan1").os == "linux"


# -- integration --------------------------------------------------------------------------------------

def test_before_integration_the_app_cannot_reach_the_vm(integrated):
    assert integrated["before"].verdict == "TimedOut"
    assert integrated["before"].reason == "PrivateAddressOnInternet"


def test_integration_through_the_sdk(az, note, integrated):
    assert integrated["swift"].subnet_resource_id == note["integration"].id
    assert az.web.web_apps.get_swift_virtual_network_connection("rg1", "app1").swift_supported is True
    site = az.web.web_apps.get("rg1", "app1")
    assert site.virtual_network_subnet_id.lower() == note["integration"].id.lower()
    conns = list(az.web.web_apps.list_vnet_connections("rg1", "app1"))
    assert len(conns) == 1 and conns[0].vnet_resource_id == note["integration"].id and conns[0].is_swift
    subnet = az.net.subnets.get("rg1", "vnet1", "integration")
    assert subnet.service_association_links[0].name == "AppServiceLink"
    assert subnet.service_association_links[0].link.lower() == note["plan"].id.lower()


def test_after_integration_the_app_reaches_the_vm_from_the_top_of_the_subnet(az, integrated):
    trace = az.lab.trace("app1", "rg1vm1", 80)
    assert trace.verdict == "Connected" and trace.source_ip_seen == "10.0.0.190"
    assert az.lab.trace("app1", "rg1vm1", 443).verdict == "TimedOut"  # the NSG's deny-https
    assert az.lab.trace("rg1vm1", "10.0.0.190", 80).verdict == "Refused"  # integration is outbound only


def test_route_all_through_config_web(az, integrated):
    config = az.web.web_apps.update_configuration("rg1", "app1", W.SiteConfigResource(vnet_route_all_enabled=True))
    assert config.vnet_route_all_enabled is True
    assert az.web.web_apps.get_configuration("rg1", "app1").vnet_route_all_enabled is True
    assert az.lab.topology().find("web_apps", "app1").route_all
    assert az.web.web_apps.get("rg1", "app1").outbound_vnet_routing.application_traffic is True
    az.web.web_apps.update_configuration("rg1", "app1", W.SiteConfigResource(vnet_route_all_enabled=False))
    assert not az.lab.topology().find("web_apps", "app1").route_all


def test_app_settings_roundtrip(az, integrated):
    az.web.web_apps.update_application_settings("rg1", "app1", W.StringDictionary(properties={"A": "1"}))
    assert az.web.web_apps.list_application_settings("rg1", "app1").properties == {"A": "1"}
    assert az.lab.topology().find("web_apps", "app1").app_settings == {"A": "1"}


# -- Network Watcher, answered by the engine -------------------------------------------------------

def test_verify_ip_flow(az, integrated):
    deny = az.net.network_watchers.begin_verify_ip_flow(*WATCHER, N.VerificationIPFlowParameters(
        target_resource_id=VM_ID, direction="Inbound", protocol="TCP", local_port="443", remote_port="50000",
        local_ip_address="10.0.0.4", remote_ip_address="10.0.0.190")).result()
    assert (deny.access, deny.rule_name) == ("Deny", "securityRules/deny-https")
    allow = az.net.network_watchers.begin_verify_ip_flow(*WATCHER, N.VerificationIPFlowParameters(
        target_resource_id=VM_ID, direction="Outbound", protocol="TCP", local_port="50000", remote_port="443",
        local_ip_address="10.0.0.4", remote_ip_address="203.0.113.10")).result()
    assert (allow.access, allow.rule_name) == ("Allow", "defaultSecurityRules/AllowInternetOutBound")


def test_next_hop(az, integrated):
    hop = az.net.network_watchers.begin_get_next_hop(*WATCHER, N.NextHopParameters(
        target_resource_id=VM_ID, source_ip_address="10.0.0.4", destination_ip_address="192.168.1.1")).result()
    assert (hop.next_hop_type, hop.route_table_id) == ("None", "System Route")
    hop = az.net.network_watchers.begin_get_next_hop(*WATCHER, N.NextHopParameters(
        target_resource_id=VM_ID, source_ip_address="10.0.0.4", destination_ip_address="10.0.0.190")).result()
    assert hop.next_hop_type == "VnetLocal"


def test_effective_routes_and_security_rules(az, integrated):
    routes = az.net.network_interfaces.begin_get_effective_route_table("rg1", "rg1vm1VMNic").result().value
    table = {r.address_prefix[0]: (r.source, r.state, r.next_hop_type) for r in routes}
    assert table["10.0.0.0/24"] == ("Default", "Active", "VnetLocal")
    assert table["0.0.0.0/0"] == ("Default", "Active", "Internet")
    assert table["192.168.0.0/16"][2] == "None"
    groups = az.net.network_interfaces.begin_list_effective_network_security_groups("rg1", "rg1vm1VMNic").result()
    group = groups.value[0]
    assert group.network_security_group.id.endswith("/networkSecurityGroups/nsg-vm")
    assert group.association.subnet.id.endswith("/subnets/default")
    rules = {r.name: r for r in group.effective_security_rules}
    assert rules["securityRules/deny-https"].access == "Deny"
    vnet_rule = rules["defaultSecurityRules/AllowVNetInBound"]
    assert "10.0.0.0/24" in vnet_rule.expanded_source_address_prefix  # the service tag, expanded
    assert "168.63.129.16/32" in vnet_rule.expanded_source_address_prefix


def test_connectivity_check(az, note, integrated):
    ok = az.net.network_watchers.begin_check_connectivity(*WATCHER, N.ConnectivityParameters(
        source=N.ConnectivitySource(resource_id=note["site"].id),
        destination=N.ConnectivityDestination(resource_id=VM_ID, port=80))).result()
    assert ok.connection_status == "Reachable" and ok.hops[0].type == "Source"
    denied = az.net.network_watchers.begin_check_connectivity(*WATCHER, N.ConnectivityParameters(
        source=N.ConnectivitySource(resource_id=note["site"].id),
        destination=N.ConnectivityDestination(address="10.0.0.4", port=443))).result()
    assert denied.connection_status == "Unreachable"
    issue = next(i for h in denied.hops for i in h.issues)
    assert issue.type == "NetworkSecurityRule" and {"key": "RuleName", "value": "deny-https"} in \
        [c for c in issue.context]


# -- errors reach the SDK with Azure's codes, and change nothing -------------------------------------

def code_of(info) -> str:
    return info.value.error.code


def test_missing_delegation(az, integrated):
    az.net.subnets.begin_create_or_update("rg1", "vnet1", "plain", N.Subnet(address_prefix="10.0.0.64/27")).result()
    az.web.app_service_plans.begin_create_or_update(
        "rg1", "plan2", W.AppServicePlan(location=LOC, sku=W.SkuDescription(name="P1v3"), reserved=True)).result()
    plain = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1/subnets/plain"
    with pytest.raises(HttpResponseError) as info:
        az.web.web_apps.begin_create_or_update("rg1", "app2", W.Site(
            location=LOC, server_farm_id=f"{RG}/providers/Microsoft.Web/serverfarms/plan2",
            virtual_network_subnet_id=plain)).result()
    assert code_of(info) == "SubnetMissingDelegation"
    assert "is missing a delegation to Microsoft.Web/serverFarms" in info.value.error.message
    assert az.lab.topology().find("web_apps", "app2") is None


def test_plan_vnet_limit(az, integrated):
    az.net.subnets.begin_create_or_update("rg1", "vnet1", "integration2", N.Subnet(
        address_prefix="10.0.0.96/28",
        delegations=[N.Delegation(name="d", service_name="Microsoft.Web/serverFarms")])).result()
    second = f"{RG}/providers/Microsoft.Network/virtualNetworks/vnet1/subnets/integration2"
    with pytest.raises(HttpResponseError) as info:
        az.web.web_apps.begin_create_or_update("rg1", "app3", W.Site(
            location=LOC, server_farm_id=f"{RG}/providers/Microsoft.Web/serverfarms/plan1",
            virtual_network_subnet_id=second)).result()
    assert info.value.status_code == 409
    assert "exceed the App Service Plan VNET limit of 1" in info.value.error.message


def test_subnet_in_use(az, integrated):
    with pytest.raises(HttpResponseError) as info:
        az.net.subnets.begin_delete("rg1", "vnet1", "integration").result()
    assert code_of(info) == "InUseSubnetCannotBeDeleted"
    with pytest.raises(HttpResponseError) as info:
        az.net.subnets.begin_create_or_update("rg1", "vnet1", "default", N.Subnet(
            address_prefix="10.0.0.0/26", delegations=[N.Delegation(name="d", service_name="Microsoft.Web/serverFarms")]
        )).result()
    assert code_of(info) == "SubnetDelegationsCannotChangeWhenSubnetUsedByResource"
    with pytest.raises(HttpResponseError) as info:
        az.net.network_security_groups.begin_delete("rg1", "nsg-vm").result()
    assert code_of(info) == "InUseNetworkSecurityGroupCannotBeDeleted"
    assert az.net.subnets.get("rg1", "vnet1", "integration").address_prefix == "10.0.0.128/26"


def test_validation_errors(az, note):
    with pytest.raises(HttpResponseError) as info:
        az.net.subnets.begin_create_or_update("rg1", "vnet1", "outside",
                                              N.Subnet(address_prefix="10.9.0.0/24")).result()
    assert code_of(info) == "NetcfgSubnetRangeOutsideVnet"
    with pytest.raises(HttpResponseError) as info:
        az.net.subnets.begin_create_or_update("rg1", "vnet1", "bad", N.Subnet(address_prefix="10.0.0.300/24")).result()
    assert code_of(info) == "InvalidAddressPrefixFormat" and info.value.status_code == 400  # Azure's, not pydantic's
    with pytest.raises(HttpResponseError) as info:
        az.net.subnets.begin_create_or_update("rg1", "vnet1", "badref", N.Subnet(
            address_prefix="10.0.0.192/28", network_security_group=N.NetworkSecurityGroup(id="not-an-id"))).result()
    assert code_of(info) == "LinkedInvalidPropertyId"
    with pytest.raises(HttpResponseError) as info:
        az.net.security_rules.begin_create_or_update("rg1", "nsg-vm", "same-priority", N.SecurityRule(
            protocol="Tcp", destination_port_range="22", direction="Inbound", access="Allow", priority=100)).result()
    assert code_of(info) == "SecurityRuleConflict"
    names = [s.name for s in az.net.subnets.list("rg1", "vnet1")]
    assert "outside" not in names and "bad" not in names and "badref" not in names


def test_not_found_shapes(az, note):
    with pytest.raises(ResourceNotFoundError) as info:
        az.net.virtual_networks.get("rg1", "nope")
    assert code_of(info) == "ResourceNotFound"
    with pytest.raises(ResourceNotFoundError) as info:
        az.net.virtual_networks.get("no-such-rg", "vnet1")
    assert code_of(info) == "ResourceGroupNotFound"
    with pytest.raises(ResourceNotFoundError):
        az.net.subnets.get("rg1", "vnet1", "nope")
    with pytest.raises(ResourceNotFoundError):
        az.web.web_apps.get("rg1", "nope")


def test_delete_and_unintegrate(az, note, integrated):
    az.net.route_tables.begin_create_or_update("rg1", "rt-tmp", N.RouteTable(location=LOC, routes=[
        N.Route(name="r", address_prefix="0.0.0.0/0", next_hop_type="None")])).result()
    assert az.net.routes.get("rg1", "rt-tmp", "r").next_hop_type == "None"
    az.net.route_tables.begin_delete("rg1", "rt-tmp").result()
    assert az.lab.topology().find("route_tables", "rt-tmp") is None
    az.net.route_tables.begin_delete("rg1", "rt-tmp").result()  # deleting nothing is fine (204)
    az.web.web_apps.delete_swift_virtual_network("rg1", "app1")
    assert az.lab.topology().find("web_apps", "app1").vnet_integration is None
    assert az.lab.trace("app1", "rg1vm1", 80).verdict == "TimedOut"
    az.web.web_apps.create_or_update_swift_virtual_network_connection_with_check(
        "rg1", "app1", W.SwiftVirtualNetwork(subnet_resource_id=note["integration"].id))
    assert az.lab.trace("app1", "rg1vm1", 80).verdict == "Connected"


# -- a NIC's several IP configurations (issue 8 §3) ------------------------------------------------

def test_nic_with_several_ip_configurations(az, note):
    subnet = N.Subnet(id=note["vm_subnet"].id)
    nic = az.net.network_interfaces.begin_create_or_update("rg1", "rg1vm1VMNic", N.NetworkInterface(
        location=LOC, ip_configurations=[
            N.NetworkInterfaceIPConfiguration(name="ipconfig1", subnet=subnet, primary=True),
            N.NetworkInterfaceIPConfiguration(name="web", subnet=subnet, private_ip_address="10.0.0.20"),
            N.NetworkInterfaceIPConfiguration(name="spare", subnet=subnet)])).result()
    got = [(c.name, c.private_ip_address, c.private_ip_allocation_method, c.primary) for c in nic.ip_configurations]
    assert got == [("ipconfig1", "10.0.0.4", "Dynamic", True), ("web", "10.0.0.20", "Static", False),
                   ("spare", "10.0.0.5", "Dynamic", False)]
    subnet_now = az.net.subnets.get("rg1", "vnet1", "default")
    assert sorted(c.id.rsplit("/", 1)[1] for c in subnet_now.ip_configurations) == ["ipconfig1", "spare", "web"]
    assert az.lab.trace("rg1vm1", "10.0.0.20", 80).steps[-1].detail.ip_configuration == "web"


@pytest.mark.parametrize("primaries,code", [((True, True), "NetworkInterfaceMustHaveOneOneIPConfigAsPrimary"),
                                            ((False, False), "NetworkInterfaceMustHaveOneOneIPConfigAsPrimary")])
def test_nic_ip_configurations_refused(az, note, primaries, code):
    subnet = N.Subnet(id=note["vm_subnet"].id)
    with pytest.raises(HttpResponseError) as info:
        az.net.network_interfaces.begin_create_or_update("rg1", "nic2", N.NetworkInterface(
            location=LOC, ip_configurations=[
                N.NetworkInterfaceIPConfiguration(name=f"c{i}", subnet=subnet, primary=p)
                for i, p in enumerate(primaries)])).result()
    assert code_of(info) == code and info.value.status_code == 400
    assert az.lab.topology().find("network_interfaces", "nic2") is None


def test_nic_ip_configuration_in_another_subnet_is_refused(az, note):
    other = az.net.subnets.begin_create_or_update("rg1", "vnet1", "other",
                                                  N.Subnet(address_prefix="10.0.0.64/27")).result()
    with pytest.raises(HttpResponseError) as info:
        az.net.network_interfaces.begin_create_or_update("rg1", "nic2", N.NetworkInterface(
            location=LOC, ip_configurations=[
                N.NetworkInterfaceIPConfiguration(name="a", subnet=N.Subnet(id=note["vm_subnet"].id), primary=True),
                N.NetworkInterfaceIPConfiguration(name="b", subnet=N.Subnet(id=other.id))])).result()
    assert code_of(info) == "IpConfigurationsMustBeInSameSubnet"
    assert az.lab.topology().find("network_interfaces", "nic2") is None


# -- who uses a public IP (issue 10 §1, §3) -----------------------------------------------------------

def test_a_public_ip_shows_its_user_in_ip_configuration_or_nat_gateway(az, note):
    """GET publicIPAddresses names its user as Azure does (read-only): a NIC's IP configuration or a VPN
    gateway's under ``ipConfiguration``, a NAT gateway under ``natGateway``; an unused one neither."""
    pips = {name: az.net.public_ip_addresses.begin_create_or_update("rg1", name, N.PublicIPAddress(
        location=LOC, sku=N.PublicIPAddressSku(name="Standard"), public_ip_allocation_method="Static")).result()
        for name in ("pip-vm", "pip-nat", "pip-gw", "pip-idle")}
    nic = az.net.network_interfaces.begin_create_or_update("rg1", "rg1vm1VMNic", N.NetworkInterface(
        location=LOC, ip_configurations=[N.NetworkInterfaceIPConfiguration(
            name="ipconfig1", subnet=N.Subnet(id=note["vm_subnet"].id),
            public_ip_address=N.PublicIPAddress(id=pips["pip-vm"].id))])).result()
    nat = az.net.nat_gateways.begin_create_or_update("rg1", "natgw", N.NatGateway(
        location=LOC, sku=N.NatGatewaySku(name="Standard"), idle_timeout_in_minutes=10,
        public_ip_addresses=[N.SubResource(id=pips["pip-nat"].id)])).result()
    gw_subnet = az.net.subnets.begin_create_or_update("rg1", "vnet1", "GatewaySubnet",
                                                      N.Subnet(address_prefix="10.0.0.224/27")).result()
    gateway = az.net.virtual_network_gateways.begin_create_or_update("rg1", "gw1", N.VirtualNetworkGateway(
        location=LOC, gateway_type="Vpn", vpn_type="RouteBased",
        sku=N.VirtualNetworkGatewaySku(name="VpnGw1", tier="VpnGw1"),
        ip_configurations=[N.VirtualNetworkGatewayIPConfiguration(
            name="gwconfig", subnet=N.SubResource(id=gw_subnet.id),
            public_ip_address=N.SubResource(id=pips["pip-gw"].id))])).result()
    got = {name: az.net.public_ip_addresses.get("rg1", name) for name in pips}
    assert got["pip-vm"].ip_configuration.id == nic.ip_configurations[0].id
    assert got["pip-gw"].ip_configuration.id == gateway.ip_configurations[0].id
    assert gateway.ip_configurations[0].id.endswith("/virtualNetworkGateways/gw1/ipConfigurations/gwconfig")
    assert got["pip-nat"].nat_gateway.id == nat.id and got["pip-nat"].ip_configuration is None
    assert got["pip-idle"].ip_configuration is None and got["pip-idle"].nat_gateway is None
    assert got["pip-gw"].ip_address == pips["pip-gw"].ip_address  # the address stays with its user


def test_a_nat_gateway_idle_timeout_outside_4_to_120_minutes_is_refused(az, note):
    with pytest.raises(HttpResponseError) as info:
        az.net.nat_gateways.begin_create_or_update("rg1", "natgw", N.NatGateway(
            location=LOC, sku=N.NatGatewaySku(name="Standard"), idle_timeout_in_minutes=121)).result()
    assert code_of(info) == "NatGatewayInvalidIdleTimeout" and "between 4 and 120" in str(info.value)
    assert az.lab.topology().find("nat_gateways", "natgw") is None
    nat = az.net.nat_gateways.begin_create_or_update("rg1", "natgw", N.NatGateway(
        location=LOC, sku=N.NatGatewaySku(name="Standard"), idle_timeout_in_minutes=120)).result()
    assert nat.idle_timeout_in_minutes == az.lab.topology().find("nat_gateways", "natgw").idle_timeout_in_minutes
