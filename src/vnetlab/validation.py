"""Azure's rules for a lab, checked on every change, with Azure's error codes and texts.

``validate(new, old)`` raises the first :class:`AzureError` it finds. ``old`` is the lab
before the change, for the rules that are about a transition (a subnet's delegation cannot
change while NICs use it; a subnet with an integrated app cannot be deleted).
"""

from __future__ import annotations

from functools import partial
from ipaddress import IPv4Address, IPv4Network, ip_network
from itertools import pairwise

from .engine.addressing import integration_addresses, reserved, usable_count
from .engine.paas import check_public_addresses
from .engine.security import RuleError, address_meaning, check_ports, unknown_prefix
from .model import WEB_SERVER_FARMS, AzureError, Topology
from .model.paas import GROUP_IDS, TARGET_TYPES
from .engine.outbound import check_outbound
from .engine.gateways import check_gateways
from .model.topology import KINDS
from .model.errors import (Conflict, DuplicateResourceName, InUseSubnetCannotBeDeleted, InvalidResourceReference,
                           NicInUse, NotFound, SubnetIsFull, VnetAddressSpacesOverlap)
from .model.web import ANY_VNETS, INTEGRATION_TIERS, INTEGRATIONS_PER_PLAN
from .parallel import WorkerFailed, fork_map, split_bounds, worker_count

SUBNET_DOCS = "See aka.ms/deletesubnet."


def validate(new: Topology, old: Topology | None = None) -> None:
    if old is not None:
        _transitions(new, old)
    _unique_names(new)
    for vnet in new.virtual_networks:
        _vnet(new, vnet)
    _nsgs(new.network_security_groups)
    for table in new.route_tables:
        _route_table(table)
    _references(new)
    _nics(new)
    _plans_and_apps(new)
    _private_dns_zones(new)
    _private_endpoints(new)
    _paas_firewalls(new, old)
    check_public_addresses(new)
    check_outbound(new)
    check_gateways(new)


def _unique_names(topo: Topology) -> None:
    for kind in KINDS:
        seen: set[str] = set()
        for res in getattr(topo, kind):
            if res.name.lower() in seen:
                raise DuplicateResourceName(f"Two {kind.replace('_', ' ')} are named '{res.name}': names must be "
                                            "unique in a lab (case-insensitive).")
            seen.add(res.name.lower())
            if topo.group(topo.rg_of(res)) is None:
                raise NotFound(f"Resource group '{topo.rg_of(res)}' could not be found.", "ResourceGroupNotFound")


def _vnet(topo: Topology, vnet) -> None:
    nets = []
    for prefix in vnet.address_space:
        net = ip_network(prefix)
        for other in nets:
            if net.overlaps(other):
                raise VnetAddressSpacesOverlap(f"Address space '{net}' overlaps with address space '{other}' of "
                                               f"virtual network '{vnet.name}'.")
        nets.append(net)
    v4 = vnet.networks
    subnets: list[tuple[str, IPv4Network]] = []
    for sn in vnet.subnets:
        for net in sn.networks:  # each of a subnet's ranges
            if not any(net.subnet_of(n) for n in v4):
                raise AzureError(f"Subnet '{sn.name}' is not valid because its IP address range is outside the IP "
                                 f"address range of virtual network '{vnet.name}'.", "NetcfgSubnetRangeOutsideVnet")
            if net.prefixlen > 29:
                raise AzureError(f"Subnet '{sn.name}' has an invalid address prefix {net}: the smallest supported "
                                 "IPv4 subnet is /29.", "InvalidAddressPrefix")
            for other_name, other in subnets:
                if net.overlaps(other):
                    raise AzureError(f"Subnet '{sn.name}' is not valid because its IP address range overlaps with "
                                     f"that of an existing subnet '{other_name}' ({other}) in virtual network "
                                     f"'{vnet.name}'.", "NetcfgSubnetRangesOverlap")
            subnets.append((sn.name, net))
        _gateway_subnet(vnet, sn)
    names = [s.name.lower() for s in vnet.subnets]
    if len(set(names)) != len(names):
        raise DuplicateResourceName(f"Virtual network '{vnet.name}' has two subnets with the same name.")
    for peering in vnet.peerings:
        remote = topo.vnet(peering.remote_virtual_network)
        if remote is None and peering.peering_state == "Disconnected":
            continue  # its remote VNet was deleted: kept, Disconnected
        if remote is None:
            raise NotFound(f"Remote virtual network '{peering.remote_virtual_network}' of peering "
                           f"'{peering.name}' was not found.", "ReferencedResourceNotProvisioned")
        if remote.name.lower() == vnet.name.lower():
            raise AzureError(f"Virtual network '{vnet.name}' cannot be peered with itself.",
                             "CannotPeerVirtualNetworkWithItself")
        for a in v4:
            for b in remote.networks:
                if a.overlaps(b):
                    raise VnetAddressSpacesOverlap(f"Cannot create or update peering '{peering.name}'. Virtual "
                                                   f"networks '{vnet.name}' and '{remote.name}' cannot be peered "
                                                   f"because their address spaces overlap ({a} and {b}).")
        _overlaps_already_peered(topo, vnet, peering, remote)


def _overlaps_already_peered(topo: Topology, vnet, peering, remote) -> None:
    """A VNet cannot peer with one already peered with a third VNet whose space overlaps its own.
    https://learn.microsoft.com/azure/virtual-network/virtual-network-manage-peering#requirements-and-constraints"""
    for other_peering in remote.peerings:
        third = topo.vnet(other_peering.remote_virtual_network)
        if third is None or third.name.lower() == vnet.name.lower():
            continue
        clash = next(((a, b) for a in vnet.networks for b in third.networks if a.overlaps(b)), None)
        if clash:
            peering_id = topo.id_of("virtual_networks", vnet, "virtualNetworkPeerings", peering.name)
            raise AzureError(f"Cannot create or update peering {peering_id}. Virtual networks "
                             f"{topo.id_of('virtual_networks', vnet)} and {topo.id_of('virtual_networks', remote)} "
                             "cannot be peered because address space of the first virtual network overlaps with "
                             f"address space of virtual network {topo.id_of('virtual_networks', third)} already "
                             f"peered with the second virtual network ({clash[0]} and {clash[1]}).",
                             "VnetAddressSpaceOverlapsWithAlreadyPeeredVnet")


# The gateway subnet is the virtual network gateway's alone.
# https://learn.microsoft.com/azure/vpn-gateway/vpn-gateway-about-vpn-gateway-settings#gwsub
GATEWAY_SUBNET = "gatewaysubnet"


def _gateway_subnet(vnet, sn) -> None:
    if sn.name.lower() == GATEWAY_SUBNET and sn.delegations:
        raise AzureError(f"Subnet {sn.name} of virtual network {vnet.name} cannot be delegated to "
                         f"{sn.delegations[0].service_name}: the gateway subnet is reserved for the virtual network "
                         "gateway.", "GatewaySubnetCannotBeDelegated")


def _nsgs(nsgs: list) -> None:
    """``_nsg`` of each NSG in turn. A large lab's (1,000 NSGs of 200 rules: seconds) is shared among
    worker processes (``fork_map``), each answering the index of the first NSG of its share that fails;
    the first of those is checked again here, which raises the very error the loop raises."""
    workers = worker_count(sum(len(nsg.security_rules) for nsg in nsgs), _PARALLEL_RULES)
    if workers > 1:
        bounds = split_bounds([len(nsg.security_rules) for nsg in nsgs], [1] * workers)
        try:
            failed = [k for k in fork_map(partial(_first_failing, nsgs), list(pairwise(bounds))) if k is not None]
        except WorkerFailed:
            failed = [0]  # checked here, all of them
        if not failed:
            return
        nsgs = nsgs[min(failed):]
    for nsg in nsgs:
        _nsg(nsg)


_PARALLEL_RULES = 20_000  # rules below which checking them here is quicker than forking (and copying pages)


def _first_failing(nsgs: list, share: tuple[int, int]) -> int | None:
    """The index of the first NSG in ``nsgs[start:end]`` that ``_nsg`` refuses, None if none."""
    for k in range(*share):
        try:
            _nsg(nsgs[k])
        except Exception:  # noqa: BLE001 - whatever it is, the parent meets it again
            return k
    return None


def _nsg(nsg) -> None:
    seen: dict[tuple[int, str], str] = {}
    for rule in nsg.security_rules:
        if not 100 <= rule.priority <= 4096:
            raise AzureError(f"Security rule {rule.name} has invalid Priority. Value provided: {rule.priority}. "
                             "Allowed range 100-4096.", "SecurityRuleInvalidPriority")
        key = (rule.priority, rule.direction)
        if key in seen:
            raise AzureError(f"Security rule {seen[key]} conflicts with rule {rule.name}. Rules cannot have the "
                             "same Priority and Direction. To learn more, see aka.ms/nsgrules.",
                             "SecurityRuleConflict")
        seen[key] = rule.name
        try:
            check_ports(rule.source_ports())
            check_ports(rule.destination_ports())
        except RuleError as exc:
            raise AzureError(f"Security rule {rule.name} has an invalid port range: {exc}.",
                             "SecurityRuleInvalidPortRange") from None
        for value in rule.sources() + rule.destinations():
            if address_meaning(value) is None:  # not *, a service tag, nor what IPv4Network reads
                why = str(unknown_prefix(value))
                raise AzureError(f"Security rule {rule.name} has invalid Address prefix. Value provided: {value}. "
                                 f"{why[:1].upper()}{why[1:]}.", "SecurityRuleInvalidAddressPrefix")


def _route_table(table) -> None:
    seen: dict[str, str] = {}
    for route in table.routes:
        try:
            IPv4Network(route.address_prefix, strict=False)
        except ValueError:
            raise AzureError(f"Route {route.name} has an invalid AddressPrefix {route.address_prefix}.",
                             "InvalidRouteAddressPrefix") from None
        prefix = str(IPv4Network(route.address_prefix, strict=False))
        if prefix in seen:  # https://learn.microsoft.com/azure/virtual-network/virtual-networks-udr-overview#custom-routes
            raise AzureError(f"Route: {route.name} conflicts with Route: {seen[prefix]}. Routes cannot have the same "
                             "AddressPrefix.", "RouteConflict")
        seen[prefix] = route.name
        if route.next_hop_type == "VirtualAppliance":
            try:
                IPv4Address(route.next_hop_ip_address or "")
            except ValueError:
                raise AzureError(f"Route {route.name} has next hop type VirtualAppliance and requires a valid "
                                 "NextHopIpAddress.", "InvalidNextHopIpAddress") from None
        elif route.next_hop_ip_address:
            raise AzureError(f"Route {route.name} has next hop type {route.next_hop_type}; NextHopIpAddress is "
                             "only allowed with VirtualAppliance.", "NextHopIpAddressNotAllowed")


def _missing(topo: Topology, kind: str, ref: str, by: str) -> InvalidResourceReference:
    return InvalidResourceReference(f"Resource {kind} '{ref}' referenced by resource {by} was not found.")


def _references(topo: Topology) -> None:
    for vnet in topo.virtual_networks:
        for sn in vnet.subnets:
            by = topo.subnet_id(f"{vnet.name}/{sn.name}")
            if sn.network_security_group and not topo.find("network_security_groups", sn.network_security_group):
                raise _missing(topo, "networkSecurityGroups", sn.network_security_group, by)
            if sn.route_table and not topo.find("route_tables", sn.route_table):
                raise _missing(topo, "routeTables", sn.route_table, by)
    for nic in topo.network_interfaces:
        by = topo.id_of("network_interfaces", nic)
        if not topo.subnet(nic.subnet):
            raise _missing(topo, "subnets", nic.subnet, by)
        if nic.network_security_group and not topo.find("network_security_groups", nic.network_security_group):
            raise _missing(topo, "networkSecurityGroups", nic.network_security_group, by)
    for vm in topo.virtual_machines:
        if not topo.find("network_interfaces", vm.network_interface):
            raise _missing(topo, "networkInterfaces", vm.network_interface, topo.id_of("virtual_machines", vm))
    users: dict[str, str] = {}
    for vm in topo.virtual_machines:
        prior = users.setdefault(vm.network_interface.lower(), vm.name)
        if prior != vm.name:
            raise NicInUse(f"Network interface {vm.network_interface} is already used by virtual machine {prior}.")
    for app in topo.web_apps:
        if not topo.find("app_service_plans", app.plan):
            raise NotFound(f"Cannot find ServerFarm with name {app.plan}.")


def _nics(topo: Topology) -> None:
    taken: dict[tuple[str, IPv4Address], str] = {}
    for nic in topo.network_interfaces:
        vnet, sn = topo.subnet(nic.subnet)
        if sn.delegations and nic.private_endpoint:
            raise AzureError(f"Private endpoint {topo.id_of('private_endpoints', topo.find('private_endpoints', nic.private_endpoint))} "
                             f"cannot be created in a subnet {topo.subnet_id(nic.subnet)} since it has delegations.",
                             "PrivateEndpointCannotBeCreatedInSubnetThatHasDelegations")
        if sn.delegations:
            raise AzureError(f"Subnet {sn.name} is delegated to {sn.delegations[0].service_name}, so network "
                             f"interface {nic.name} cannot use it: a delegated subnet serves only that service.",
                             "SubnetDelegatedCannotBeUsedByNic")
        _ip_configuration_names(topo, nic)
        for config in nic.ip_configurations:
            if config.private_ip_address:
                _nic_address(topo, nic, config, vnet, sn, taken)


def _ip_configuration_names(topo: Topology, nic) -> None:
    seen: set[str] = set()
    for config in nic.ip_configurations:
        if config.name.lower() in seen:
            raise DuplicateResourceName(f"Network interface {topo.id_of('network_interfaces', nic)} has two IP "
                                        f"configurations named '{config.name}': names must be unique in a NIC.")
        seen.add(config.name.lower())


def _nic_address(topo: Topology, nic, config, vnet, sn, taken: dict) -> None:
    """Each configuration's address is in the NIC's subnet, not reserved, and held by nobody else
    in the VNet (another NIC, or another configuration of this one).
    https://learn.microsoft.com/azure/virtual-network/ip-services/virtual-network-multiple-ip-addresses-portal
    https://learn.microsoft.com/azure/virtual-network/ip-services/private-ip-addresses"""
    ip = IPv4Address(config.private_ip_address)
    net = sn.network_of(ip)
    if net is None:
        raise AzureError(f"Private static IP address {ip} does not belong to the range of subnet prefix "
                         f"{', '.join(sn.prefixes)}.", "PrivateIPAddressNotInSubnet")
    if ip in reserved(net):
        raise AzureError(f"Private static IP address {ip} falls within reserved IP range of subnet prefix {net}.",
                         "PrivateIPAddressInReservedRange")
    key = (vnet.name.lower(), ip)
    config_id = f"{topo.id_of('network_interfaces', nic)}/ipConfigurations/{config.name}"
    if key in taken:
        raise AzureError(f"IP configuration {config_id} is using the private IP address {ip} which is already "
                         f"allocated to resource {taken[key]}.", "PrivateIPAddressIsAllocated")
    taken[key] = config_id


def _plans_and_apps(topo: Topology) -> None:
    for plan in topo.app_service_plans:
        subnets = {a.vnet_integration.lower() for a in topo.web_apps
                   if a.vnet_integration and a.plan.lower() == plan.name.lower()}
        limit = INTEGRATIONS_PER_PLAN[plan.os]
        if len(subnets) > limit:
            raise Conflict(f"Adding this VNET would exceed the App Service Plan VNET limit of {limit}.")
    for app in topo.web_apps:
        if app.vnet_integration:
            _integration(topo, app)
        _access_restrictions(topo, app)
    for ref, needed in _subnet_demand(topo).items():
        vnet, sn = topo.subnet(ref)
        if needed > usable_count(sn.network):
            raise SubnetIsFull(f"Subnet {sn.name} in VNET {vnet.name} has {usable_count(sn.network)} usable "
                               f"addresses but the App Service plans integrated with it need {needed} (one per "
                               "instance).")


def _access_restrictions(topo: Topology, app) -> None:
    """A subnet rule names a subnet of the lab, which has the Microsoft.Web service endpoint (az and
    PowerShell check it before sending the rule; ``ignore_missing_vnet_service_endpoint`` is their
    --ignore-missing-endpoint: the rule then matches nothing until the subnet has the endpoint).
    https://learn.microsoft.com/azure/app-service/overview-access-restrictions#permit-a-virtual-network-subnet"""
    for rule in [*app.ip_security_restrictions, *app.scm_ip_security_restrictions]:
        ref = rule.vnet_subnet_resource_id
        if ref is None:
            continue
        found = topo.subnet(ref)
        if found is None:
            raise AzureError(f"IpSecurityRestriction.VnetSubnetResourceId is invalid. Subnet {ref} of access "
                             f"restriction {rule.name or rule.priority} of web app {app.name} was not found.",
                             "BadRequest")
        if not rule.ignore_missing_vnet_service_endpoint and not has_service_endpoint(found[1], "Microsoft.Web"):
            raise AzureError(f"Access restriction {rule.name or rule.priority} of web app {app.name}: subnet "
                             f"{topo.subnet_id(ref)} does not have the Microsoft.Web service endpoint, so no request "
                             "from it can match the rule. Add Microsoft.Web to the subnet's service endpoints (az "
                             "webapp config access-restriction add does), or set ignore_missing_vnet_service_endpoint "
                             "(az: --ignore-missing-endpoint).", "ServiceEndpointMissing")  # vnetlab's code
    _service_endpoint_rules_with_private_endpoint(topo, app)


SE_RULES_WITH_PE = ("Access restriction rules based on service endpoints are not supported on apps that have "
                    "private endpoint configured")


def _service_endpoint_rules_with_private_endpoint(topo: Topology, app) -> None:
    """"Access restriction rules based on service endpoints are not supported on apps that have private
    endpoint configured": the docs give no error for it, so the lab refuses the change that would make
    both exist (the rule's, or the private endpoint's). A subnet rule and an ``AnyVnets`` rule (the docs'
    "any service endpoint source") are service endpoint rules; a private endpoint to a slot
    (``sites-<slot>``) is the slot's, not the site's. Code: vnetlab's.
    https://learn.microsoft.com/azure/app-service/overview-access-restrictions#access-restriction-rules-based-on-service-endpoints"""
    pes = [pe for pe in topo.private_endpoints_to("web_apps", app.name) if (pe.group_id or "").lower() == "sites"]
    if not pes:
        return
    for site, rules in (("main site", app.ip_security_restrictions), ("scm site", app.scm_ip_security_restrictions)):
        rule = next((r for r in rules if r.vnet_subnet_resource_id is not None or r.ip_address == ANY_VNETS), None)
        if rule is not None:
            source = topo.subnet_id(rule.vnet_subnet_resource_id) if rule.vnet_subnet_resource_id else ANY_VNETS
            raise AzureError(f"{SE_RULES_WITH_PE}. Web app '{app.name}' has the private endpoint '{pes[0].name}' and "
                             f"the {site} access restriction rule '{rule.name or rule.priority}' (priority "
                             f"{rule.priority}) based on the service endpoint source {source}. Remove the rule (or "
                             "use an IP-based rule), or remove the private endpoint, then try again.",
                             "ServiceEndpointRuleNotSupportedWithPrivateEndpoint")


def _integration(topo: Topology, app) -> None:
    found = topo.subnet(app.vnet_integration)
    plan = topo.find("app_service_plans", app.plan)
    if not found:
        raise InvalidResourceReference(f"Subnet '{app.vnet_integration}' of web app {app.name} was not found.")
    vnet, sn = found
    if sn.name.lower() == GATEWAY_SUBNET:
        raise AzureError(f"Subnet {sn.name} of virtual network {vnet.name} is the gateway subnet, reserved for the "
                         "virtual network gateway: it cannot be used for VNet integration.",
                         "GatewaySubnetCannotBeUsedForVnetIntegration")
    if plan.tier not in INTEGRATION_TIERS:
        raise AzureError(f"The App Service plan {plan.name} ({plan.sku}, {plan.tier}) does not support VNet "
                         "integration: use Basic, Standard, Premium V2, Premium V3 or Elastic Premium.",
                         "VnetIntegrationNotSupportedForSku")
    if topo.location_of(app) != topo.location_of(vnet):
        raise AzureError(f"The app and the virtual network must be in the same region: web app {app.name} is in "
                         f"{topo.location_of(app)} and virtual network {vnet.name} is in {topo.location_of(vnet)}.",
                         "VnetIntegrationRegionMismatch")
    if any(ip_network(p).version == 6 for p in vnet.address_space):
        raise AzureError(f"Virtual network {vnet.name} has IPv6 address space: the integration virtual network "
                         "can't have IPv6 address spaces defined.", "VnetIntegrationIpv6NotSupported")
    if not sn.delegated_to(WEB_SERVER_FARMS):
        raise AzureError(f"Subnet {sn.name} in VNET {vnet.name} is missing a delegation to "
                         f"{WEB_SERVER_FARMS}. Please add the delegation and try again.", "SubnetMissingDelegation")
    if sn.network.prefixlen > 28:
        raise AzureError(f"Subnet {sn.name} ({sn.address_prefix}) is too small: VNet integration requires an "
                         "IPv4 /28 block or larger.", "SubnetTooSmallForVnetIntegration")


def _transitions(new: Topology, old: Topology) -> None:
    _deleted_while_in_use(new, old)
    _scale_needs(new, old)
    for vnet in old.virtual_networks:
        new_vnet = new.vnet(vnet.name)
        for sn in vnet.subnets:
            ref = f"{vnet.name}/{sn.name}"
            if new_vnet is not None and new_vnet.subnet(sn.name) is not None:
                _delegation_change(new, old, vnet, sn, new_vnet.subnet(sn.name))
                continue
            if _holds_app_service_link(new, old, vnet, sn):
                sal = old.subnet_id(ref) + "/serviceAssociationLinks/AppServiceLink"
                raise InUseSubnetCannotBeDeleted(f"Subnet {sn.name} is in use by {sal} and cannot be deleted. In "
                                                 "order to delete the subnet, delete all the resources within the "
                                                 f"subnet. {SUBNET_DOCS}")
            for nic in new.nics_in(vnet.name, sn.name):
                raise InUseSubnetCannotBeDeleted(f"Subnet {sn.name} is in use by "
                                                 f"{new.id_of('network_interfaces', nic)}/ipConfigurations/{nic.primary_ip_configuration} "
                                                 "and cannot be deleted. In order to delete the subnet, delete all the "
                                                 f"resources within the subnet. {SUBNET_DOCS}")


def _holds_app_service_link(new: Topology, old: Topology, vnet, sn) -> bool:
    """The subnet still has an AppServiceLink: an app integrated with it that was not disconnected
    (still integrated, or deleted in this change), or one left by an app deleted before.
    https://learn.microsoft.com/azure/app-service/overview-vnet-integration#troubleshooting"""
    if sn.service_association_links:
        return True
    ref = f"{vnet.name}/{sn.name}".lower()
    for app in old.apps_integrated_with(vnet.name, sn.name):
        now = new.find("web_apps", app.name)
        if now is None or (now.vnet_integration or "").lower() == ref:
            return True
    return False


def _scale_needs(new: Topology, old: Topology) -> None:
    """Scaling an integrated plan up/down (SKU) or in/out (instances) adds the new instances
    before removing the old ones: during the operation the plan holds both sets of addresses.
    https://learn.microsoft.com/azure/app-service/overview-vnet-integration#subnet-requirements"""
    steady = _subnet_demand(new)
    for plan in new.app_service_plans:
        before = old.find("app_service_plans", plan.name)
        if before is None or (before.sku.lower(), before.instances) == (plan.sku.lower(), plan.instances):
            continue
        for ref in {a.vnet_integration.lower() for a in new.web_apps
                    if a.vnet_integration and a.plan.lower() == plan.name.lower()}:
            if ref not in {a.vnet_integration.lower() for a in old.web_apps
                           if a.vnet_integration and a.plan.lower() == plan.name.lower()}:
                continue  # integrated in this change: no scale operation in the subnet
            vnet, sn = new.subnet(ref)
            needed = steady.get(ref, 0) + before.instances
            if needed > usable_count(sn.network):
                raise SubnetIsFull(f"Subnet {sn.name} in VNET {vnet.name} has {usable_count(sn.network)} usable "
                                   f"addresses, but scaling App Service plan {plan.name} from {before.sku} x "
                                   f"{before.instances} to {plan.sku} x {plan.instances} needs {needed} during the "
                                   "scale operation: when you scale up/down in size or in/out in number of instances, "
                                   "the required address space is doubled for a short period of time.")


def _subnet_demand(topo: Topology) -> dict[str, int]:
    """VNET/SUBNET (lower case) -> addresses its integrated plans hold: one per plan instance."""
    demand: dict[str, int] = {}
    for plan, ref in integration_addresses(topo):
        p = topo.find("app_service_plans", plan)
        demand[ref] = demand.get(ref, 0) + (p.instances if p else 1)
    return demand


def _delegation_change(new: Topology, old: Topology, vnet, old_sn, new_sn) -> None:
    before = sorted(d.service_name for d in old_sn.delegations)
    after = sorted(d.service_name for d in new_sn.delegations)
    if before == after:
        return
    nics = old.nics_in(vnet.name, old_sn.name)
    if nics:
        users = ", ".join(f"{old.id_of('network_interfaces', n)}/ipConfigurations/{n.primary_ip_configuration}"
                          for n in nics)
        raise AzureError(f"Delegations of subnet {old.subnet_id(f'{vnet.name}/{old_sn.name}')} cannot be changed "
                         f"from [{', '.join(before)}] to [{', '.join(after)}] because it is being used by the "
                         f"resource {users}.", "SubnetDelegationsCannotChangeWhenSubnetUsedByResource")
    if (old.apps_integrated_with(vnet.name, old_sn.name) or old_sn.service_association_links) \
            and WEB_SERVER_FARMS not in after:
        sal = old.subnet_id(f"{vnet.name}/{old_sn.name}") + "/serviceAssociationLinks/AppServiceLink"
        raise AzureError(f"Subnet {old_sn.name} requires any of the following delegation(s) [{WEB_SERVER_FARMS}] "
                         f"to reference service association link {sal}.",
                         "SubnetMissingRequiredDelegation")


def _deleted_while_in_use(new: Topology, old: Topology) -> None:
    """A resource still referenced cannot be deleted: Azure asks to remove the association first."""
    for nsg in old.network_security_groups:
        if new.find("network_security_groups", nsg.name) is None:
            users = new.subnets_using("network_security_group", nsg.name) + [
                new.id_of("network_interfaces", n) for n in new.nics_using_nsg(nsg.name)]
            if users:
                raise AzureError(f"Network security group {old.id_of('network_security_groups', nsg)} cannot be "
                                 f"deleted because it is in use by the following resources: {', '.join(users)}. In "
                                 "order to delete the Network security group, remove the association with the "
                                 "resource(s). To learn how to do this, see aka.ms/deletensg.",
                                 "InUseNetworkSecurityGroupCannotBeDeleted")
    for table in old.route_tables:
        if new.find("route_tables", table.name) is None:
            users = new.subnets_using("route_table", table.name)
            if users:
                raise AzureError(f"Route table {old.id_of('route_tables', table)} is in use by subnet(s) "
                                 f"{', '.join(users)} and cannot be deleted.", "InUseRouteTableCannotBeDeleted")
    for nic in old.network_interfaces:
        vm = new.vm_of_nic(nic.name)
        if new.find("network_interfaces", nic.name) is None and vm is not None:
            raise NicInUse(f"Network Interface {old.id_of('network_interfaces', nic)} is used by existing "
                           f"resource {new.id_of('virtual_machines', vm)}. In order to delete the network "
                           "interface, it must be dissociated from the resource. To learn more, see "
                           "aka.ms/deletenic.")
    for plan in old.app_service_plans:
        if new.find("app_service_plans", plan.name) is None:
            sites = [a.name for a in new.web_apps if a.plan.lower() == plan.name.lower()]
            if sites:
                raise Conflict(f"Server farm '{plan.name}' cannot be deleted because it has web app(s) "
                               f"{', '.join(sites)} assigned to it.")


# -- private DNS zones, private endpoints, PaaS firewalls (issue 9) ----------------------------------
# Zone names Azure refuses: its own infrastructure domains and their subdomains, except privatelink
# zones. https://learn.microsoft.com/azure/dns/private-dns-privatednszone#restrictions
RESERVED_ZONES = ("azclient.ms", "azure.com", "azure.net", "azure-api.net", "cloudapp.net", "core.windows.net",
                  "microsoft.com", "msidentity.com", "trafficmanager.net", "windows.net")
MAX_ZONES_PER_GROUP = 5
RFC1918 = tuple(ip_network(p) for p in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))  # https://learn.microsoft.com/azure/private-link/private-endpoint-dns-integration


def _private_dns_zones(topo: Topology) -> None:
    registration: dict[str, str] = {}  # VNet (lower) -> the zone it registers in
    for zone in topo.private_dns_zones:
        _zone_name(zone.name)
        _zone_records(zone)
        names: set[str] = set()
        for link in zone.virtual_network_links:
            if link.name.lower() in names:
                raise DuplicateResourceName(f"Private DNS zone {zone.name} has two virtual network links named "
                                            f"'{link.name}'.")
            names.add(link.name.lower())
            vnet = topo.vnet(link.virtual_network)
            if vnet is None:
                raise InvalidResourceReference(f"Virtual network '{link.virtual_network}' of virtual network link "
                                               f"'{link.name}' of private DNS zone {zone.name} was not found.")
            if zone.link_to(vnet.name) is not link:
                # https://learn.microsoft.com/azure/dns/private-dns-virtual-network-links: one link per zone and VNet
                raise AzureError(f"A virtual network cannot be linked to multiple zones with overlapping namespaces. "
                                 f"You tried to link virtual network with '{zone.name}' and '{zone.name}' zones.")
            if link.registration_enabled:
                other = registration.setdefault(vnet.name.lower(), zone.name)
                if other != zone.name:  # https://learn.microsoft.com/azure/dns/private-dns-autoregistration#restrictions
                    raise Conflict(f"A virtual network can only be linked to 1 Private DNS zone(s) with "
                                   f"auto-registration enabled; conflicting Private DNS zone is '{other}'.")


def _zone_name(name: str) -> None:
    labels = name.split(".")
    if len(labels) < 2:
        raise AzureError(f"The zone name '{name}' does not have enough labels. Zone names must have two or more "
                         "labels.")
    if len(labels) > 34 or not all(labels):
        raise AzureError(f"The zone name '{name}' is not valid: a private DNS zone name has 2 to 34 labels.")
    reserved_by = next((r for r in RESERVED_ZONES if name == r or name.endswith("." + r)), None)
    if reserved_by and "privatelink" not in labels:
        # Azure's text, "infrastucture" included
        raise AzureError(f"The Private DNS zone name '{name}' is not permitted as it is a reserved Azure "
                         "infrastucture domain and creating such zones may have unintended consequences for DNS "
                         "resolution for services deployed in your virtual networks. Refer "
                         "https://docs.microsoft.com/en-us/azure/dns/private-dns-privatednszone#restrictions for more "
                         "details.")


def _zone_records(zone) -> None:
    seen: dict[str, str] = {}
    for record in zone.records:
        prior = seen.get(record.name)
        if prior == record.type:
            raise Conflict(f"The record set '{record.name}' of type {record.type} already exists in private DNS zone "
                           f"{zone.name}.")
        if prior is not None:  # a CNAME owns its name (RFC 1034 3.6.2)
            raise AzureError(f"The record set '{record.name}' in private DNS zone {zone.name} cannot hold a CNAME "
                             "record set and another record set: a CNAME record set cannot share its name.")
        seen[record.name] = record.type


def _private_endpoints(topo: Topology) -> None:
    for pe in topo.private_endpoints:
        by = topo.id_of("private_endpoints", pe)
        if not topo.subnet(pe.subnet):
            raise _missing(topo, "subnets", pe.subnet, by)
        target = topo.private_link_target(pe)
        if target is None:
            raise InvalidResourceReference(f"Resource {pe.target} referenced by resource {by} was not found: a "
                                           "private endpoint targets a storage account, SQL server, key vault or web "
                                           "app of the lab.")
        kind, resource = target
        connection = f"{by}/privateLinkServiceConnections/{pe.name}"
        if not pe.group_id:
            raise AzureError(f"Private link service connection {connection} is missing required parameter "
                             "'group Id'.", "MissingParameterOnPrivateLinkServiceConnection")
        valid = GROUP_IDS[kind]
        if pe.group_id not in valid and not (kind == "web_apps" and pe.group_id.startswith("sites-")):
            # https://learn.microsoft.com/azure/private-link/private-endpoint-overview#private-link-resource
            raise AzureError(f"Call to {TARGET_TYPES[kind]} failed. Error message: Values for request parameters are "
                             f"invalid: GroupId: {pe.group_id}. Valid group ids: {', '.join(valid)}.",
                             "InvalidValuesForRequestParameters")
        if len(pe.private_dns_zone_group) > MAX_ZONES_PER_GROUP:
            raise AzureError(f"Private DNS zone group of private endpoint {pe.name} references "
                             f"{len(pe.private_dns_zone_group)} private DNS zones: at most {MAX_ZONES_PER_GROUP}.",
                             "PrivateDnsZoneGroupHasTooManyZones")
        for zone in pe.private_dns_zone_group:
            if topo.find("private_dns_zones", zone) is None:
                raise _missing(topo, "privateDnsZones", zone, f"{by}/privateDnsZoneGroups/default")


# The service endpoint a VNet rule needs on its subnet, per service.
# https://learn.microsoft.com/azure/virtual-network/virtual-network-service-endpoints-overview
def has_service_endpoint(subnet, service: str) -> bool:
    """The subnet has ``service``'s endpoint (``Microsoft.Storage.Global`` counts for storage)."""
    low = service.lower()
    return any(se.lower() in (low, f"{low}.global") for se in subnet.service_endpoints)


def _paas_firewalls(topo: Topology, old: Topology | None) -> None:
    for account in topo.storage_accounts:
        _storage_rules(topo, account)
    for server in topo.sql_servers:
        _sql_rules(topo, server, old)
    for vault in topo.key_vaults:
        for ref in vault.network_acls.virtual_network_rules:
            vnet, sn = _rule_subnet(topo, ref, topo.id_of("key_vaults", vault))
            if not has_service_endpoint(sn, "Microsoft.KeyVault"):
                raise AzureError(f"Subnet {topo.subnet_id(ref)} of virtual network rule of key vault {vault.name} "
                                 "does not have the Microsoft.KeyVault service endpoint: add Microsoft.KeyVault to the "
                                 "subnet's service endpoints first.", "VirtualNetworkRuleBadRequest")
        _ip_rules(vault.network_acls.ip_rules, "key vault", vault.name)


def _rule_subnet(topo: Topology, ref: str, by: str):
    found = topo.subnet(ref)
    if found is None:
        raise _missing(topo, "subnets", ref, by)
    return found


def _storage_rules(topo: Topology, account) -> None:
    for ref in account.network_rule_set.virtual_network_rules:
        vnet, sn = _rule_subnet(topo, ref, topo.id_of("storage_accounts", account))
        if not has_service_endpoint(sn, "Microsoft.Storage"):
            # Azure's text. https://learn.microsoft.com/azure/storage/common/storage-network-security#grant-access-from-a-virtual-network
            raise AzureError(f"Validation of network acls failure: SubnetsHaveNoServiceEndpointsConfigured:Subnets "
                             f"{sn.name} of virtual network {topo.id_of('virtual_networks', vnet)} do not have "
                             "ServiceEndpoints for Microsoft.Storage resources configured. Add Microsoft.Storage to "
                             "subnet's ServiceEndpoints collection before trying to ACL Microsoft.Storage resources to "
                             "these subnets..", "NetworkAclsValidationFailure")
    _ip_rules(account.network_rule_set.ip_rules, "storage account", account.name)


def _ip_rules(rules: list[str], what: str, name: str) -> None:
    """IP network rules take public IPv4 addresses only, and no /31 or /32 range (a bare address).
    https://learn.microsoft.com/azure/storage/common/storage-network-security#grant-access-from-an-internet-ip-range"""
    for rule in rules:
        net = ip_network(rule)
        if any(net.overlaps(private) for private in RFC1918):
            raise AzureError(f"Validation of network acls failure: IP rule {rule} of {what} {name} is a private "
                             "address: IP network rules take public IPv4 addresses only.", "NetworkAclsValidationFailure")
        if "/" in rule and net.prefixlen > 30:
            raise AzureError(f"Validation of network acls failure: IP rule {rule} of {what} {name}: /31 and /32 "
                             "ranges are not supported; write the address alone.", "NetworkAclsValidationFailure")


def _sql_rules(topo: Topology, server, old: Topology | None) -> None:
    for rule in server.firewall_rules:
        if IPv4Address(rule.start_ip_address) > IPv4Address(rule.end_ip_address):
            raise AzureError(f"Firewall rule {rule.name} of server {server.name}: the start IP address "
                             f"{rule.start_ip_address} is after the end IP address {rule.end_ip_address}.",
                             "FirewallRuleStartIpAddressGreaterThanEndIpAddress")
    before = old.find("sql_servers", server.name) if old is not None else None
    if server.public_network_access == "Disabled" and before is not None \
            and [r.model_dump() for r in server.firewall_rules] != [r.model_dump() for r in before.firewall_rules]:
        # https://learn.microsoft.com/azure/azure-sql/database/connectivity-settings#deny-public-network-access
        raise AzureError("Unable to create or modify firewall rules when public network interface for the server is "
                         "disabled. To manage server or database level firewall rules, please enable the public "
                         "network interface.", "42101")
    for rule in server.virtual_network_rules:
        vnet, sn = _rule_subnet(topo, rule.subnet, topo.id_of("sql_servers", server))
        if topo.location_of(vnet) != topo.location_of(server):
            raise AzureError(f"Microsoft.Sql resources in {topo.location_of(server)} cannot be ACL-ed to virtual "
                             f"network in {topo.location_of(vnet)}. Only resources in {topo.location_of(vnet)} can be "
                             f"ACL-ed to virtual networks in {topo.location_of(vnet)}.", "VirtualNetworkRuleBadRequest")
        if not rule.ignore_missing_vnet_service_endpoint and not has_service_endpoint(sn, "Microsoft.Sql"):
            # https://learn.microsoft.com/azure/azure-sql/database/vnet-service-endpoint-rule-overview
            raise AzureError(f"Virtual network rule {rule.name} of server {server.name}: subnet "
                             f"{topo.subnet_id(rule.subnet)} does not have the Microsoft.Sql service endpoint. Add it "
                             "to the subnet, or create the rule with ignore_missing_vnet_service_endpoint (it does "
                             "nothing until the subnet has the endpoint).", "VirtualNetworkRuleBadRequest")
