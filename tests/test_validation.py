"""Every validation failure: Azure's error code, exit status 2, and the lab unchanged."""

import copy

import pytest
import yaml
from conftest import NOTE, cli, up_note

from vnetlab.store import Store

@pytest.fixture
def lab(tmp_path):
    return up_note(tmp_path), tmp_path


def snapshot(home):
    store = Store.open(home)
    return store.version(), store.load()


def attempt_up(lab, mutate):
    home, tmp = lab
    doc = copy.deepcopy(NOTE)
    mutate(doc)
    f = tmp / "bad.yaml"
    f.write_text(yaml.safe_dump(doc))
    before = snapshot(home)
    result = cli(home, "up", str(f))
    assert result.exit_code == 2, result.output
    assert snapshot(home) == before
    return result.output


def _vnet(doc):
    return doc["virtual_networks"][0]


CASES = {
    "VnetAddressSpacesOverlap": lambda d: _vnet(d).update(address_space=["10.0.0.0/24", "10.0.0.128/25"]),
    "NetcfgSubnetRangeOutsideVnet": lambda d: _vnet(d)["subnets"].append({"name": "x",
                                                                           "address_prefix": "10.9.0.0/24"}),
    "NetcfgSubnetRangesOverlap": lambda d: _vnet(d)["subnets"].append({"name": "x", "address_prefix": "10.0.0.32/27"}),
    "PrivateIPAddressNotInSubnet": lambda d: d["virtual_machines"][0].update(private_ip_address="10.0.0.70"),
    "PrivateIPAddressInReservedRange": lambda d: d["virtual_machines"][0].update(private_ip_address="10.0.0.1"),
    "PrivateIPAddressIsAllocated": lambda d: d["virtual_machines"].append(
        {"name": "vm2", "subnet": "vnet1/default", "private_ip_address": "10.0.0.4"}),
    "SubnetMissingDelegation": lambda d: (
        _vnet(d)["subnets"].append({"name": "int2", "address_prefix": "10.0.0.64/27"}),
        d["web_apps"][0].update(vnet_integration="vnet1/int2")),
    "SubnetMissingRequiredDelegation": lambda d: _vnet(d)["subnets"][1].update(delegations=[]),
    "SubnetTooSmallForVnetIntegration": lambda d: _vnet(d)["subnets"][1].update(address_prefix="10.0.0.128/29"),
    "VnetIntegrationRegionMismatch": lambda d: _vnet(d).update(location="northeurope"),
    "VnetIntegrationNotSupportedForSku": lambda d: d["app_service_plans"][0].update(sku="F1"),
    "VnetIntegrationIpv6NotSupported": lambda d: _vnet(d).update(address_space=["10.0.0.0/24", "fd00::/48"]),
    "SubnetIsFull": lambda d: d["app_service_plans"][0].update(instances=60),
    "SecurityRuleConflict": lambda d: d.update(network_security_groups=[{"name": "n", "security_rules": [
        {"name": "a", "priority": 100, "direction": "Inbound"}, {"name": "b", "priority": 100,
                                                                 "direction": "Inbound"}]}]),
    "SecurityRuleInvalidPriority": lambda d: d.update(network_security_groups=[{"name": "n", "security_rules": [
        {"name": "a", "priority": 5000}]}]),
    "InvalidResourceReference": lambda d: _vnet(d)["subnets"][0].update(network_security_group="missing"),
    "InvalidRequestContent": lambda d: _vnet(d).update(bogus_key=1),
    "RouteConflict": lambda d: d.update(route_tables=[{"name": "rt", "routes": [
        {"name": "a", "address_prefix": "10.9.0.0/16", "next_hop_type": "None"},
        {"name": "b", "address_prefix": "10.9.0.0/16", "next_hop_type": "Internet"}]}]),
    "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet": lambda d: _peered_to_overlapping(d),
    "GatewaySubnetCannotBeDelegated": lambda d: _vnet(d)["subnets"].append(
        {"name": "GatewaySubnet", "address_prefix": "10.0.0.64/27", "delegations": ["Microsoft.Web/serverFarms"]}),
    "InvalidDnsServerAddress": lambda d: _vnet(d).update(dns_servers=["10.0.0.300"]),
    "InvalidAddressPrefixFormat": lambda d: _vnet(d)["subnets"][0].update(address_prefix="10.0.0.0/33"),
    "InvalidCIDRNotation": lambda d: _vnet(d)["subnets"][0].update(address_prefix="10.0.0.5/26"),
}


def _peered_to_overlapping(d):
    """vnet1 peers with hub, which is already peered with other: other overlaps vnet1."""
    _vnet(d)["peerings"] = [{"name": "to-hub", "remote_virtual_network": "hub"}]
    d["virtual_networks"] += [
        {"name": "hub", "address_space": ["10.1.0.0/24"], "peerings": [
            {"name": "to-vnet1", "remote_virtual_network": "vnet1"},
            {"name": "to-other", "remote_virtual_network": "other"}]},
        {"name": "other", "address_space": ["10.0.0.0/16"], "peerings": [
            {"name": "to-hub", "remote_virtual_network": "hub"}]}]


@pytest.mark.parametrize("code", sorted(CASES))
def test_bad_file_is_refused_with_azures_code_and_changes_nothing(lab, code):
    output = attempt_up(lab, CASES[code])
    assert f"({code})" in output


def test_missing_delegation_text_is_azures(lab):
    output = attempt_up(lab, CASES["SubnetMissingDelegation"])
    assert "Subnet int2 in VNET vnet1 is missing a delegation to Microsoft.Web/serverFarms" in \
        " ".join(output.split())


def test_plan_vnet_limit(lab):
    def second_subnet(d):
        _vnet(d)["subnets"].append({"name": "int2", "address_prefix": "10.0.0.64/27",
                                    "delegations": ["Microsoft.Web/serverFarms"]})
        d["web_apps"].append({"name": "app2", "plan": "plan1", "vnet_integration": "vnet1/int2"})
    output = attempt_up(lab, second_subnet)
    assert "Adding this VNET would exceed the App Service Plan VNET limit of 1." in " ".join(output.split())


def test_windows_plan_allows_two_integrations(lab):
    home, tmp = lab
    doc = copy.deepcopy(NOTE)
    doc["app_service_plans"][0]["os"] = "windows"
    _vnet(doc)["subnets"].append({"name": "int2", "address_prefix": "10.0.0.64/27",
                                  "delegations": ["Microsoft.Web/serverFarms"]})
    doc["web_apps"].append({"name": "app2", "plan": "plan1", "vnet_integration": "vnet1/int2"})
    f = tmp / "win.yaml"
    f.write_text(yaml.safe_dump(doc))
    assert cli(home, "up", str(f)).exit_code == 0


def test_deleting_an_integrated_subnet_or_vnet_fails_with_the_appservicelink_text(lab):
    out = attempt_up(lab, lambda d: _vnet(d)["subnets"].pop(1))
    assert "(InUseSubnetCannotBeDeleted)" in out and "serviceAssociationLinks/AppServiceLink" in out
    out = attempt_up(lab, lambda d: d.update(virtual_networks=[], virtual_machines=[]))
    assert "(InUseSubnetCannotBeDeleted)" in out


def test_delegating_a_used_subnet_fails(lab):
    out = attempt_up(lab, lambda d: _vnet(d)["subnets"][0].update(delegations=["Microsoft.Web/serverFarms"]))
    assert "(SubnetDelegationsCannotChangeWhenSubnetUsedByResource)" in out


def test_integration_add_delegates_like_az_and_refuses_a_used_subnet(tmp_path):
    home = tmp_path / "lab"
    doc = copy.deepcopy(NOTE)
    _vnet(doc)["subnets"][1]["delegations"] = []
    doc["web_apps"][0].pop("vnet_integration")
    f = tmp_path / "lab.yaml"
    f.write_text(yaml.safe_dump(doc))
    assert cli(home, "up", str(f)).exit_code == 0
    before = snapshot(home)
    bad = cli(home, "webapp", "vnet-integration", "add", "--name", "app1", "--vnet", "vnet1", "--subnet", "default")
    assert bad.exit_code == 2 and "(SubnetDelegationsCannotChangeWhenSubnetUsedByResource)" in bad.output
    assert snapshot(home) == before
    ok = cli(home, "webapp", "vnet-integration", "add", "--name", "app1", "--vnet", "vnet1", "--subnet",
             "integration", "-o", "json")
    assert ok.exit_code == 0, ok.output
    sn = next(s for s in Store.open(home).load()["virtual_networks"][0]["subnets"] if s["name"] == "integration")
    assert [d["service_name"] for d in sn["delegations"]] == ["Microsoft.Web/serverFarms"]


def test_unreadable_or_invalid_yaml(lab):
    home, tmp = lab
    f = tmp / "broken.yaml"
    f.write_text("virtual_networks: [\n")
    before = snapshot(home)
    assert cli(home, "up", str(f)).exit_code == 2
    assert cli(home, "up", str(tmp / "missing.yaml")).exit_code == 2
    assert snapshot(home) == before


def _with_nsg_and_table(d):
    d["network_security_groups"] = [{"name": "nsg-vm", "security_rules": []}]
    d["route_tables"] = [{"name": "rt1", "routes": []}]
    _vnet(d)["subnets"][0].update(network_security_group="nsg-vm", route_table="rt1")


@pytest.mark.parametrize("code,drop", [
    ("InUseNetworkSecurityGroupCannotBeDeleted", "network_security_groups"),
    ("InUseRouteTableCannotBeDeleted", "route_tables"),
    ("Conflict", "app_service_plans"),
])
def test_a_resource_still_referenced_cannot_be_deleted(tmp_path, code, drop):
    home = tmp_path / "lab"
    doc = copy.deepcopy(NOTE)
    _with_nsg_and_table(doc)
    f = tmp_path / "lab.yaml"
    f.write_text(yaml.safe_dump(doc))
    assert cli(home, "up", str(f)).exit_code == 0
    doc[drop] = []
    f.write_text(yaml.safe_dump(doc))
    before = snapshot(home)
    result = cli(home, "up", str(f))
    assert result.exit_code == 2 and f"({code})" in result.output, result.output
    assert snapshot(home) == before


# -- peering life cycle ---------------------------------------------------------------------------
# https://learn.microsoft.com/azure/virtual-network/virtual-network-manage-peering
def _peered_doc():
    doc = copy.deepcopy(NOTE)
    doc["virtual_networks"][0]["peerings"] = [{"name": "to-b", "remote_virtual_network": "vnetb"}]
    doc["virtual_networks"].append({"name": "vnetb", "address_space": ["10.5.0.0/24"],
                                    "subnets": [{"name": "s", "address_prefix": "10.5.0.0/26"}],
                                    "peerings": [{"name": "to-1", "remote_virtual_network": "vnet1"}]})
    doc["virtual_machines"].append({"name": "vmb", "subnet": "vnetb/s", "services": [{"port": 80}]})
    return doc


@pytest.fixture
def peered(tmp_path):
    from vnetlab.lab import Lab
    from vnetlab.model import Topology
    lab = Lab.open(tmp_path / "lab")
    lab.up(Topology.model_validate(_peered_doc()))
    return lab


def _state(lab, vnet, peering):
    from vnetlab.engine.routing import peering_state
    topo = lab.topology()
    v = topo.vnet(vnet)
    return peering_state(topo, v, next(p for p in v.peerings if p.name == peering))


def _drop_peering(vnet, name):
    def fn(topo):
        v = topo.vnet(vnet)
        v.peerings = [p for p in v.peerings if p.name != name]
    return fn


def _add_peering(vnet, name, remote):
    from vnetlab.model import VirtualNetworkPeering
    return lambda topo: topo.vnet(vnet).peerings.append(VirtualNetworkPeering(name=name,
                                                                               remote_virtual_network=remote))


def test_deleting_one_side_leaves_the_other_disconnected_without_traffic(peered):
    assert _state(peered, "vnet1", "to-b") == "Connected"
    assert peered.trace("rg1vm1", "vmb", 80).verdict == "Connected"
    peered.change(_drop_peering("vnetb", "to-1"))
    assert _state(peered, "vnet1", "to-b") == "Disconnected"
    t = peered.trace("rg1vm1", "vmb", 80)
    assert t.verdict != "Connected"


def test_recreating_the_deleted_side_while_the_remote_is_disconnected_fails(peered):
    from vnetlab.model import AzureError
    peered.change(_drop_peering("vnetb", "to-1"))
    version = peered.store.version()
    with pytest.raises(AzureError) as info:
        peered.change(_add_peering("vnetb", "to-1", "vnet1"))
    assert info.value.code == "RemotePeeringIsDisconnected"
    assert "is in Disconnected state" in info.value.message and "/virtualNetworkPeerings/to-b" in info.value.message
    assert peered.store.version() == version
    # re-creating the Disconnected side first gets it back to Initiated; then both connect
    peered.change(_drop_peering("vnet1", "to-b"))
    peered.change(_add_peering("vnet1", "to-b", "vnetb"))
    assert _state(peered, "vnet1", "to-b") == "Initiated"
    peered.change(_add_peering("vnetb", "to-1", "vnet1"))
    assert _state(peered, "vnet1", "to-b") == _state(peered, "vnetb", "to-1") == "Connected"
    assert peered.trace("rg1vm1", "vmb", 80).verdict == "Connected"


def test_deleting_a_vnet_leaves_its_remote_peerings_disconnected(peered):
    def delete_vm(topo):
        topo.virtual_machines = [vm for vm in topo.virtual_machines if vm.name != "vmb"]
        topo.network_interfaces = [n for n in topo.network_interfaces if not n.subnet.startswith("vnetb/")]
    peered.change(delete_vm)
    peered.delete_vnet("vnetb")
    assert [p.name for p in peered.topology().vnet("vnet1").peerings] == ["to-b"]
    assert _state(peered, "vnet1", "to-b") == "Disconnected"
    assert not any(r.next_hop_type == "VNetPeering" for r in peered.network().subnet_view("vnet1/default").routes)


def test_a_new_peering_to_a_missing_vnet_is_still_refused(peered):
    from vnetlab.model import AzureError
    with pytest.raises(AzureError) as info:
        peered.change(_add_peering("vnet1", "to-nowhere", "nowhere"))
    assert info.value.code == "ReferencedResourceNotProvisioned"


# -- Azure's texts for bad input ---------------------------------------------------------------------------
@pytest.mark.parametrize("mutate,text", [
    (CASES["InvalidAddressPrefixFormat"], "Address prefix 10.0.0.0/33 of resource default is not formatted correctly. "
                                          "It should follow CIDR notation, for example 10.0.0.0/24."),
    (CASES["InvalidCIDRNotation"], "The address prefix 10.0.0.5/26 in resource default has an invalid CIDR notation. "
                                   "For the given prefix length, the address prefix should be 10.0.0.0/26."),
    (lambda d: _vnet(d)["subnets"].append({"name": "x", "address_prefix": "10.0.0.32/27"}),
     "Subnet 'x' is not valid because its IP address range overlaps with that of an existing subnet 'default' "
     "(10.0.0.0/26) in virtual network 'vnet1'."),
    (CASES["RouteConflict"], "Route: b conflicts with Route: a. Routes cannot have the same AddressPrefix."),
    (lambda d: _vnet(d).update(dns_servers=[""]), "DNS server address '' of virtual network vnet1 is not a valid"),
])
def test_bad_input_gets_azures_text_not_pydantics(lab, mutate, text):
    output = " ".join(attempt_up(lab, mutate).split())
    assert text in output and "Value error" not in output


def test_an_integration_into_the_gateway_subnet_is_refused(lab):
    def gateway(d):
        _vnet(d)["subnets"][1]["name"] = "GatewaySubnet"
        d["web_apps"][0]["vnet_integration"] = "vnet1/GatewaySubnet"
    output = attempt_up(lab, gateway)
    assert "(GatewaySubnetCannotBeDelegated)" in output or "(GatewaySubnetCannotBeUsedForVnetIntegration)" in output


def test_an_unknown_service_tag_is_refused_saying_vnetlab_does_not_know_it(lab):
    def rule(d):
        d["network_security_groups"] = [{"name": "n", "security_rules": [
            {"name": "r", "priority": 100, "direction": "Outbound", "destination_address_prefix": "Storage2"}]}]
    output = " ".join(attempt_up(lab, rule).split())
    assert "(SecurityRuleInvalidAddressPrefix)" in output and "Value provided: Storage2" in output
    assert "'Storage2' is not a service tag vnetlab knows" in output


@pytest.mark.parametrize("tag", ["AzureCloud", "Storage.westeurope", "AzureFrontDoor.Backend", "GatewayManager",
                                 "AzureActiveDirectory", "EventHub", "AzureMonitor", "Sql", "AppService"])
def test_service_tags_users_write_are_accepted(tmp_path, tag):
    doc = copy.deepcopy(NOTE)
    doc["network_security_groups"] = [{"name": "n", "security_rules": [
        {"name": "r", "priority": 100, "direction": "Inbound", "source_address_prefix": tag}]}]
    up_note(tmp_path, doc)


# -- App Service plan scale and orphaned AppServiceLink ------------------------------------------------
# https://learn.microsoft.com/azure/app-service/overview-vnet-integration#subnet-requirements
@pytest.fixture
def small_integration(tmp_path):
    """The note's lab with a /28 integration subnet: 11 usable addresses."""
    from vnetlab.lab import Lab
    doc = copy.deepcopy(NOTE)
    _vnet(doc)["subnets"][1]["address_prefix"] = "10.0.0.128/28"
    doc["app_service_plans"][0]["instances"] = 5
    return Lab.open(up_note(tmp_path, doc))


def _plan(**changes):
    return lambda t: t.find("app_service_plans", "plan1").__dict__.update(changes)


def test_a_scale_up_needs_twice_the_instances_addresses_during_the_operation(small_integration):
    from vnetlab.model import AzureError
    small_integration.change(_plan(sku="P2v3"))  # 5 + 5 = 10 <= 11
    small_integration.change(_plan(instances=6))  # 5 + 6 = 11 <= 11
    version = small_integration.store.version()
    with pytest.raises(AzureError) as info:
        small_integration.change(_plan(sku="P3v3"))  # 6 + 6 = 12 > 11
    assert info.value.code == "SubnetIsFull"
    assert "needs 12 during the scale operation" in info.value.message and "doubled" in info.value.message
    assert small_integration.store.version() == version
    assert small_integration.topology().find("app_service_plans", "plan1").sku == "P2v3"


def test_a_plan_that_fits_once_scaled_is_still_refused_if_the_transition_does_not(small_integration):
    from vnetlab.model import AzureError
    with pytest.raises(AzureError) as info:
        small_integration.change(_plan(instances=7))  # steady 7 fits; 5 + 7 = 12 during the scale does not
    assert info.value.code == "SubnetIsFull"


def _delete_app_and_plan(t):
    t.web_apps = []
    t.app_service_plans = []


def _delete_integration_subnet(t):
    t.vnet("vnet1").subnets = [s for s in t.vnet("vnet1").subnets if s.name != "integration"]


def test_deleting_app_and_plan_without_disconnecting_leaves_the_app_service_link(tmp_path):
    from vnetlab.lab import Lab
    from vnetlab.model import AzureError
    lab = Lab.open(up_note(tmp_path))
    lab.change(_delete_app_and_plan)
    assert lab.topology().vnet("vnet1").subnet("integration").service_association_links == ["plan1"]
    def delete_everything_in_the_vnet(t):
        t.virtual_machines, t.network_interfaces, t.virtual_networks = [], [], []
    for fn in (_delete_integration_subnet, delete_everything_in_the_vnet):
        with pytest.raises(AzureError) as info:
            lab.change(fn)
        assert info.value.code == "InUseSubnetCannotBeDeleted"
        assert "/subnets/integration/serviceAssociationLinks/AppServiceLink and cannot be deleted" in \
            info.value.message
    # the docs' way out: the app again, integrated, then disconnected; then the subnet goes
    from vnetlab.model import AppServicePlan, WebApp
    def app_again(t):
        t.app_service_plans.append(AppServicePlan(name="plan1"))
        t.web_apps.append(WebApp(name="app1", plan="plan1", vnet_integration="vnet1/integration"))
    lab.change(app_again)
    lab.disconnect("app1")
    assert lab.topology().vnet("vnet1").subnet("integration").service_association_links == []
    lab.change(_delete_integration_subnet)


def test_disconnecting_first_leaves_no_link(tmp_path):
    from vnetlab.lab import Lab
    lab = Lab.open(up_note(tmp_path))
    lab.disconnect("app1")
    lab.change(_delete_app_and_plan)
    lab.change(_delete_integration_subnet)
    assert lab.topology().vnet("vnet1").subnet("integration") is None


# -- several prefixes on one subnet ---------------------------------------------------------------------
def _second_range(prefix):
    def mutate(d):
        _vnet(d)["address_space"] = ["10.0.0.0/24", "10.7.0.0/24"]
        _vnet(d)["subnets"][0]["address_prefixes"] = ["10.0.0.0/26", prefix]
    return mutate


@pytest.mark.parametrize("prefix,code,text", [
    ("10.0.0.128/27", "NetcfgSubnetRangesOverlap", "existing subnet 'default' (10.0.0.128/27)"),
    ("10.9.0.0/26", "NetcfgSubnetRangeOutsideVnet", "is outside the IP address range"),
])
def test_each_prefix_of_a_subnet_is_checked(lab, prefix, code, text):
    output = " ".join(attempt_up(lab, _second_range(prefix)).split())
    assert f"({code})" in output and text in output


def test_a_static_address_may_be_in_any_prefix_of_its_subnet(tmp_path):
    from vnetlab.lab import Lab
    doc = copy.deepcopy(NOTE)
    _second_range("10.7.0.0/26")(doc)
    doc["virtual_machines"][0]["private_ip_address"] = "10.7.0.9"
    topo = Lab.open(up_note(tmp_path, doc)).topology()
    assert topo.find("network_interfaces", "rg1vm1VMNic").private_ip_address == "10.7.0.9"
    assert topo.vnet("vnet1").subnet("default").address_prefixes == ["10.0.0.0/26", "10.7.0.0/26"]
