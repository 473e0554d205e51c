"""The service layer: the verbs of a lab over its store, each change one transaction.

``Lab.change(fn)`` reads the lab, applies ``fn`` to a copy, allocates dynamic addresses,
checks Azure's rules (:mod:`vnetlab.validation`) against the lab as it was, and writes it
back, all inside one SQLite ``BEGIN IMMEDIATE`` transaction: a failure leaves the lab as it
was, and concurrent writers are serialized. The backend (``sim`` or ``netns``) is then told
to realize the new lab.
"""

from __future__ import annotations

import json
import os
import threading
from ipaddress import IPv4Address, IPv4Network
from typing import Callable

from pydantic import TypeAdapter, ValidationError

from .bulk import bulk
from .engine.addressing import lowest_free, settle_app_service_links
from .engine.outbound import allocate_public_addresses
from .engine.dns import Resolution, resolve
from .engine.network import LabView
from .engine.routing import settle_peerings
from .engine.security import cover_may_match, flow_protocol, port_cover
from .engine.trace import Trace, trace
from .model import (KINDS, WEB_SERVER_FARMS, AzureError, Delegation, NetworkSecurityGroup, ResourceGroup,
                    SecurityRule, Topology, VirtualNetwork, WebApp)
from .model.errors import InvalidArgumentValue, LabNotFound, ResourceGroupNotFound, ResourceNotFound, SubnetIsFull
from .model.paas import subnet_ref
from .model.stored import Untrusted, construct, model_stamp
from .model.web import IpSecurityRestriction
from .parallel import fork_map, worker_count
from .store import Store, StoredLab
from .topology import parse, pydantic_error
from .validation import validate

BACKENDS = ("sim", "netns")


class Lab:
    def __init__(self, store: Store):
        self.store = store
        self._snapshot: tuple[int, Topology] | None = None
        self._net: tuple[int, LabView] | None = None
        self._reading = threading.Lock()  # one parse per store version, however many threads ask

    @classmethod
    def open(cls, home: str | os.PathLike | None = None) -> "Lab":
        return cls(Store.open(home))

    @property
    def home(self):
        return self.store.home

    # -- reading -------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.store.has_lab()

    @bulk()
    def topology(self) -> Topology:
        stored = self.store.load_stored()
        return read_stored(stored) if stored is not None else Topology()

    @bulk()
    def topology_for(self, flows: list[tuple[str, int | None]]) -> Topology:
        """The lab for questions about ``flows`` only ((protocol, port) as ``engine.matrix.parse_flows``
        gives them): an NSG none of whose rules may match one of them is read without its rules (the
        store's cover of each NSG's rules says so without reading them). On a large lab whose rules
        are on other ports, that is most of the lab not read. Give it to ``LabView(topo, flows)``."""
        def wanted(cover: str) -> bool:
            found = json.loads(cover)
            return any(cover_may_match(found, protocol, port) for protocol, port in flows)
        stored = self.store.load_stored(wanted)
        return read_stored(stored) if stored is not None else Topology()

    def snapshot(self, version: int | None = None) -> Topology:
        """The lab as stored, parsed once per store version and shared (the API's reads, the compiled
        network): treat it as read-only. ``version``: the store's, when the caller just read it."""
        version = self.store.version() if version is None else version
        cached = self._snapshot
        if cached is not None and cached[0] == version:
            return cached[1]
        with self._reading:
            cached = self._snapshot
            if cached is None or cached[0] != version:
                cached = self._snapshot = (version, self.topology())
        return cached[1]

    def is_current(self, version: int) -> bool:
        """The snapshot of ``version`` is at hand (nothing to parse)."""
        cached = self._snapshot
        return cached is not None and cached[0] == version

    @bulk()
    def network(self, version: int | None = None) -> LabView:
        """The compiled lab, built once per store version."""
        version = self.store.version() if version is None else version
        cached = self._net
        if cached is not None and cached[0] == version:
            return cached[1]
        topo = self.snapshot(version)
        with self._reading:
            cached = self._net
            if cached is None or cached[0] != version:
                cached = self._net = (version, LabView(topo))
        return cached[1]

    @bulk()
    def matrix(self, ports: list[str], expand: bool = False, progress: Callable[[int, int], None] | None = None,
               paas: bool = False) -> dict:
        """``engine.matrix.matrix`` over the lab: the compiled lab when it is at hand for this version,
        else the lab read for the asked flows only (``topology_for``)."""
        from .engine.matrix import matrix as compute, parse_flows
        return compute(self.network_for(parse_flows(ports)), ports, expand, progress, paas)

    @bulk()
    def network_for(self, flows: list[tuple[str, int | None]]) -> LabView:
        """The compiled lab for questions about ``flows`` only: the whole compiled lab when it is at
        hand or its snapshot is (a server's: compiled once, kept), else the lab read for those flows
        (``topology_for``: a one-shot command on a large lab reads a fraction of it)."""
        version = self.store.version()
        cached = self._net
        if (cached is not None and cached[0] == version) or self.is_current(version):
            return self.network(version)
        return LabView(self.topology_for(flows), flows)

    def trace(self, source: str, destination: str, port: int | None = None, protocol: str = "Tcp",
              headers: dict[str, str] | None = None, source_ip: str | None = None) -> Trace:
        protocol = flow_protocol(protocol)
        return trace(self.network_for([(protocol, port)]), source, destination, port, protocol, headers, source_ip)

    def resolve(self, source: str, name: str) -> Resolution:
        """`nslookup NAME` in the VM or web app ``source``: the answer and why (engine.dns)."""
        return resolve(self.network(), source, name)

    @property
    def backend_name(self) -> str:
        return self.store.get_meta("backend") or "sim"

    # -- changing ------------------------------------------------------------------------
    @bulk()
    def change(self, fn: Callable[[Topology], Topology | None], create: bool = True) -> Topology:
        with self.store.write() as tx:
            old, new = self._draft(tx.load(), fn, create)
            if old is not None and new == old:
                return old
            tx.save_lab(*stored_form(new), model_stamp())
        self._after_change(old, new)
        return new

    @staticmethod
    def _draft(doc: dict | None, fn, create: bool, whole: bool = False) -> tuple[Topology | None, Topology]:
        """(the lab as it is, the lab after ``fn``: addressed and validated). ``whole``: ``fn`` returns
        a whole new lab already validated by the model (``up``'s file), taken as it is, addresses filled
        in: parsing a draft for it and re-validating a copy would cost seconds on a large lab."""
        if doc is None and not create:
            raise LabNotFound("There is no lab here: run `vnetlab up FILE` first.")
        old = parse(doc) if doc is not None else None
        if whole:
            new = fn(None)
        else:
            draft = parse(doc) if doc is not None else Topology()  # a second parse is cheaper than a deep copy
            new = fn(draft) or draft
            try:
                new = Topology.model_validate(new.model_dump())
            except ValidationError as exc:
                raise pydantic_error(exc) from None
        Lab._derive(new, old)
        validate(new, old)
        return old, new

    @staticmethod
    def _derive(new: Topology, old: Topology | None) -> None:
        """What a change sets beyond the user's words: dynamic addresses, peering states, App Service
        links left behind. From ``old`` only its NICs, VNets and apps are read (``_unchanged`` passes
        the running lab without its NSGs, the bulk of a large lab)."""
        allocate_dynamic_addresses(new, old)
        settle_peerings(new, old)
        settle_app_service_links(new, old)

    @staticmethod
    def _unchanged(desired: Topology, running: dict | None, stored: StoredLab | None) -> tuple[Topology, Topology] | None:
        """(desired, desired) when ``desired``, with what a change derives (``_derive``), is the stored
        lab to the byte (the usual second ``up`` of one file): the stored lab, valid when it was saved, is
        then neither parsed whole nor checked again. None otherwise."""
        if running is None:
            return None
        try:
            Lab._derive(desired, parse({**running, "network_security_groups": []}))
        except AzureError:
            return None  # the full check decides, and derives again
        return (desired, desired) if stored is not None and stored_texts(desired) == (stored.core, stored.rules) \
            else None

    @bulk()
    def up(self, desired: Topology, backend: str | None = None, replace: bool = False,
           stage: Callable[[str], None] = lambda _name: None) -> Topology:
        """Create the lab from ``desired`` or reconcile it, on ``backend`` (default: the lab's own).
        ``desired`` is taken over: its dynamic addresses are filled in. ``stage`` is told each of its
        three stages as it starts (``checking``, ``saving``, ``building``), for a progress bar.

        Refused before anything changes (the stored backend included): an unknown or unavailable
        backend, a lab of another name unless ``replace``, a topology Azure would refuse.
        """
        if backend is not None:
            check_backend(backend)
        version, stored = self.store.version(), self.store.load_stored()
        running = stored.doc() if stored is not None else None
        self._check_same_lab(desired, replace, running)
        to_address = unaddressed(desired)
        stage("checking")
        checked = self._unchanged(desired, running, stored) or self._draft(running, lambda _old: desired, True,
                                                                           whole=True)
        switched = backend is not None and backend != self.backend_name
        if switched:
            self.switch_backend(backend, apply=False)
        stage("saving")
        with self.store.write() as tx:
            if tx.version() != version:  # another writer came between: check against its lab
                for holder in to_address:
                    holder.private_ip_address = None
                checked = self._draft(tx.load(), lambda _old: desired, True, whole=True)
            old, topo = checked
            changed = old is None or topo != old
            if changed:
                tx.save_lab(*stored_form(topo), model_stamp())
            elif tx.stamp() != model_stamp():  # saved by older models: the same lab as these dump it, trusted
                tx.rewrite_lab(*stored_form(old), model_stamp())
        stage("building")
        if changed:
            self._after_change(old, topo)
        else:
            topo = old
            if switched:  # the same lab on a new backend: build it there
                self._after_change(old, topo)
        if changed or switched:  # just applied (and its services checked)
            return topo
        from .backends import backend_for
        realized = backend_for(self)
        if not getattr(realized, "in_sync", lambda lab: True)(self):
            realized.apply(self, topo)  # unchanged file, but the last apply did not finish (crash)
        return topo

    def preview(self, desired: Topology, replace: bool = False) -> Topology:
        """What `up` would make of ``desired``, refused as `up` refuses it, and nothing written: the
        lab after the change, addressed and validated against the stored lab (see :func:`preview`)."""
        doc = self.store.load()
        self._check_same_lab(desired, replace, doc)
        return self._draft(doc, lambda _old: desired, True, whole=True)[1]

    def switch_backend(self, backend: str, apply: bool = True) -> None:
        """Move the lab to another backend: the old one is torn down from its records first, then
        the new one is recorded and (``apply``) given the lab."""
        check_backend(backend)
        if backend == self.backend_name:
            return
        from .backends import backend_for
        backend_for(self).teardown(self)
        self.store.set_meta("backend", backend)
        if apply and self.exists():
            backend_for(self).apply(self, self.topology())

    @staticmethod
    def _check_same_lab(desired: Topology, replace: bool, running: dict | None) -> None:
        name = (running or {}).get("name", "lab")
        if running is not None and not replace and name.lower() != desired.name.lower():
            raise AzureError(f"Lab '{name}' is running here and the file describes lab '{desired.name}'. "
                             "Use --replace to replace it, or `vnetlab down` first.", "LabNameMismatch", 409)

    def down(self) -> bool:
        existed = self.exists()
        from .backends import backend_for
        backend_for(self).teardown(self)
        with self.store.write() as tx:
            tx.delete()
        self.store.set_meta("backend", "sim")
        self._net = self._snapshot = None
        return existed

    # -- verbs -----------------------------------------------------------------------------
    def integrate(self, app: str, subnet_ref: str, delegate: bool = True) -> Topology:
        """`az webapp vnet-integration add`: the web app joins ``VNET/SUBNET``."""
        return self.change(lambda t: integrate(t, web_app(t, app), subnet_ref, delegate), create=False)

    def disconnect(self, app: str) -> Topology:
        """`az webapp vnet-integration remove`: the subnet and its delegation stay."""
        return self.change(lambda t: disconnect(web_app(t, app)), create=False)

    def set_route_all(self, app: str, on: bool) -> Topology:
        """`az webapp config set --vnet-route-all-enabled`: every Route All setting agrees."""
        return self.change(lambda t: web_app(t, app).set_route_all(on), create=False)

    def add_access_restriction(self, app: str, rule: IpSecurityRestriction, scm: bool = False,
                               ignore_missing_endpoint: bool = False) -> Topology:
        """`az webapp config access-restriction add`: the rule joins the main (or scm) site's list; a
        subnet rule adds Microsoft.Web to the subnet's service endpoints unless ``ignore_missing_endpoint``."""
        return self.change(lambda t: add_access_restriction(t, web_app(t, app), rule, scm, ignore_missing_endpoint),
                           create=False)

    def remove_access_restriction(self, app: str, scm: bool = False, action: str = "Allow", **source) -> Topology:
        """`az webapp config access-restriction remove`: by ``rule_name`` and/or one source
        (``ip_address``, ``service_tag``, ``subnet``); the action must match."""
        return self.change(lambda t: remove_access_restriction(t, web_app(t, app), scm, action, **source),
                           create=False)

    def set_access_restrictions(self, app: str, use_main: bool | None = None, default_action: str | None = None,
                                scm_default_action: str | None = None) -> Topology:
        """`az webapp config access-restriction set`."""
        def change(t: Topology) -> None:
            site = web_app(t, app)
            if use_main is not None:
                site.scm_ip_security_restrictions_use_main = use_main
            if default_action is not None:
                site.ip_security_restrictions_default_action = restriction_action(default_action, "--default-action")
            if scm_default_action is not None:
                site.scm_ip_security_restrictions_default_action = restriction_action(scm_default_action,
                                                                                      "--scm-default-action")
        return self.change(change, create=False)

    def web_app_action(self, app: str, action: str) -> Topology:
        """`az webapp stop|start|restart`: a stopped app runs no code and its front end answers
        "403 Site Disabled" (engine.paas.web_app_stopped). https://learn.microsoft.com/cli/azure/webapp#az-webapp-stop"""
        if action not in ("stop", "start", "restart"):
            raise InvalidArgumentValue(f"A web app takes stop, start or restart, not '{action}'.")
        return self.change(lambda t: getattr(web_app(t, app), action)(), create=False)

    def set_public_network_access(self, app: str, value: str | None) -> Topology:
        """`az webapp update --set publicNetworkAccess=Enabled|Disabled` (None: unset)."""
        def change(t: Topology) -> None:
            if value is not None and value.strip().lower() not in ("enabled", "disabled"):
                raise InvalidArgumentValue(f"publicNetworkAccess takes Enabled or Disabled, not '{value}'.")
            web_app(t, app).public_network_access = value.strip().capitalize() if value else None
        return self.change(change, create=False)

    def set_security_rule(self, nsg: str, rule: SecurityRule) -> Topology:
        """`az network nsg rule create`: the rule is added, or replaces the NSG's rule of that name."""
        return self.change(lambda t: set_security_rule(network_security_group(t, nsg), rule), create=False)

    def delete_vnet(self, name: str) -> Topology:
        """`az network vnet delete`: the remote side's peerings stay, Disconnected."""
        def remove(t: Topology) -> None:
            vnet = t.vnet(name)
            if vnet is None:
                raise ResourceNotFound(type="Microsoft.Network/virtualNetworks", name=name, group=t.resource_group)
            delete_vnet(t, vnet)
        return self.change(remove, create=False)

    def delete_group(self, name: str) -> Topology:
        """`az group delete`: the group and everything in it."""
        def remove(t: Topology) -> None:
            group = t.group(name)
            if group is None:
                raise ResourceGroupNotFound(group=name)
            delete_group(t, group)
        return self.change(remove, create=False)

    def _after_change(self, old: Topology | None, new: Topology) -> None:
        from .backends import backend_for
        backend_for(self).apply(self, new)


def preview(desired: Topology, running: Topology | None, replace: bool = False) -> Topology:
    """`up`'s checks of ``desired`` against ``running`` (None: no lab yet), nothing written: the lab
    ``desired`` would give, addressed and validated. ``desired`` is taken over: its dynamic addresses
    are filled in. Refused as `up` refuses: another lab's name unless ``replace``, what Azure refuses."""
    doc = running.model_dump(mode="json") if running is not None else None
    Lab._check_same_lab(desired, replace, doc)
    return Lab._draft(doc, lambda _old: desired, True, whole=True)[1]


def read_stored(stored: StoredLab) -> Topology:
    """The lab from the store: built as it is when this code's models validated it before saving
    (its stamp), validated again otherwise (``model.stored``)."""
    doc = stored.doc()
    if stored.stamp is not None and stored.stamp == model_stamp():
        try:
            return construct(Topology, doc)
        except Untrusted:
            doc = stored.doc()  # construct took over part of the first one
    return parse(doc)


_RULES = TypeAdapter(list[SecurityRule])


def stored_texts(topo: Topology) -> tuple[str, dict[int, str]]:
    """(the lab's JSON with every NSG's rules list empty, NSG position -> the JSON of its rules, for
    the NSGs that have some): how the store keeps a lab (``store.StoredLab``)."""
    nsgs = topo.network_security_groups
    bare = [nsg.model_copy(update={"security_rules": []}) if nsg.security_rules else nsg for nsg in nsgs]
    core = topo.model_copy(update={"network_security_groups": bare}).model_dump_json()
    return core, {i: _RULES.dump_json(nsg.security_rules).decode() for i, nsg in enumerate(nsgs) if nsg.security_rules}


def stored_form(topo: Topology) -> tuple[str, dict[int, tuple[str, str]]]:
    """``stored_texts`` with each NSG's cover (``engine.security.port_cover``): ``WriteTx.save_lab``'s
    arguments. On a large lab the covers are worked out in a forked worker while this process dumps."""
    nsgs = topo.network_security_groups

    def covers() -> list[str]:
        return [json.dumps(port_cover(nsg.security_rules)) for nsg in nsgs if nsg.security_rules]
    parts = [lambda: stored_texts(topo), covers]
    if worker_count(sum(len(nsg.security_rules) for nsg in nsgs), _PARALLEL_COVERS) > 1:
        (core, rules), found = fork_map(lambda part: part(), parts)
    else:
        (core, rules), found = (part() for part in parts)
    return core, {i: (cover, text) for (i, text), cover in zip(rules.items(), found, strict=True)}


_PARALLEL_COVERS = 20_000  # rules below which working out their covers here is quicker than forking


def check_backend(backend: str) -> None:
    """An unknown backend, or netns where it cannot run, is refused before anything changes."""
    if backend not in BACKENDS:
        raise AzureError(f"Unknown backend '{backend}': use sim or netns.", "InvalidBackend")
    if backend == "netns":
        from .backends import netns_backend
        netns_backend.check()


# -- the verbs' changes, on a draft inside a transaction (the API runs them in its own) --------------
def web_app(topo: Topology, name: str) -> WebApp:
    app = topo.find("web_apps", name)
    if app is None:
        raise ResourceNotFound(type="Microsoft.Web/sites", name=name, group=topo.resource_group)
    return app


def integrate(topo: Topology, app: WebApp, subnet_ref: str, delegate: bool = True) -> None:
    """Regional VNet integration of ``app`` with ``VNET/SUBNET``; ``delegate`` delegates the subnet to
    Microsoft.Web/serverFarms first, as `az webapp vnet-integration add` does (the ARM call does not).
    A subnet that does not exist is refused by validation.
    https://learn.microsoft.com/azure/app-service/configure-vnet-integration-enable"""
    found = topo.subnet(subnet_ref)
    if found is None:
        app.vnet_integration = subnet_ref
        return
    vnet, subnet = found
    if delegate and not subnet.delegated_to(WEB_SERVER_FARMS):
        subnet.delegations.append(Delegation(name="delegation", service_name=WEB_SERVER_FARMS))  # as az names it
    app.vnet_integration = f"{vnet.name}/{subnet.name}"


def restriction_action(value: str, option: str) -> str:
    low = value.strip().lower()
    if low not in ("allow", "deny"):
        raise InvalidArgumentValue(f"{option} takes Allow or Deny, not '{value}'.")
    return low.capitalize()


def add_access_restriction(topo: Topology, app: WebApp, rule: IpSecurityRestriction, scm: bool,
                           ignore_missing_endpoint: bool) -> None:
    """What `az webapp config access-restriction add` does: a subnet rule first gets the subnet its
    Microsoft.Web service endpoint (unless told to ignore it), a second rule for the same subnet with
    the same headers is refused (az's text).
    https://learn.microsoft.com/azure/app-service/app-service-ip-restrictions#add-an-access-restriction-rule"""
    rules = app.scm_ip_security_restrictions if scm else app.ip_security_restrictions
    ref = rule.vnet_subnet_resource_id
    if ref is not None:
        subnet_id = topo.subnet_id(ref)
        if any(r.vnet_subnet_resource_id and topo.subnet_id(r.vnet_subnet_resource_id).lower() == subnet_id.lower()
               and r.headers == rule.headers for r in rules):
            raise InvalidArgumentValue(f"A service-endpoint access-restriction rule for subnet '{subnet_id}' already "
                                       "exists. Cannot add a duplicate rule. Use a different subnet, or add a "
                                       "--http-header filter to create an additional rule.")
        found = topo.subnet(ref)
        if ignore_missing_endpoint:
            rule = rule.model_copy(update={"ignore_missing_vnet_service_endpoint": True})
        elif found is not None and not any(se.lower() == "microsoft.web" for se in found[1].service_endpoints):
            found[1].service_endpoints.append("Microsoft.Web")
    rules.append(rule)


NO_RULE_FOUND = ("No rule found with the specified criteria.\n- If you specify rule name and source, both must match.\n"
                 "- If you are trying to remove a Deny rule, you must explicitly specify --action Deny")


def remove_access_restriction(topo: Topology, app: WebApp, scm: bool, action: str, rule_name: str | None = None,
                              ip_address: str | None = None, service_tag: str | None = None,
                              subnet: str | None = None) -> None:
    """What `az webapp config access-restriction remove` does: the first rule whose source (and name,
    when given) and action match goes; none: az's error."""
    rules = app.scm_ip_security_restrictions if scm else app.ip_security_restrictions
    action = restriction_action(action, "--action")

    def source_of(rule) -> bool:
        if ip_address is not None:
            return rule.tag != "ServiceTag" and rule.ip_address == IpSecurityRestriction(
                ip_address=ip_address, priority=0).ip_address
        if service_tag is not None:
            return rule.tag == "ServiceTag" and (rule.ip_address or "").lower() == service_tag.lower()
        if subnet is not None:
            return bool(rule.vnet_subnet_resource_id) and \
                topo.subnet_id(rule.vnet_subnet_resource_id).lower() == topo.subnet_id(subnet_ref(subnet)).lower()
        return True

    for rule in rules:
        named = rule_name is None or (rule.name or "").lower() == rule_name.lower()
        if named and rule.action == action and source_of(rule) and (rule_name or ip_address or service_tag or subnet):
            rules.remove(rule)
            return
    raise ResourceNotFound(NO_RULE_FOUND)


def network_security_group(topo: Topology, name: str) -> NetworkSecurityGroup:
    nsg = topo.find("network_security_groups", name)
    if nsg is None:
        raise ResourceNotFound(type="Microsoft.Network/networkSecurityGroups", name=name, group=topo.resource_group)
    return nsg


def set_security_rule(nsg: NetworkSecurityGroup, rule: SecurityRule) -> None:
    """Add ``rule``, or put it in the place of the rule of the same name (names are case-insensitive)."""
    rules = nsg.security_rules
    same = next((i for i, r in enumerate(rules) if r.name.lower() == rule.name.lower()), None)
    if same is None:
        rules.append(rule)
    else:
        rules[same] = rule


def disconnect(app: WebApp) -> None:
    app.vnet_integration = None


def delete_vnet(topo: Topology, vnet: VirtualNetwork) -> None:
    """The VNet goes; the remote side's peerings to it stay, Disconnected (settle_peerings).
    https://learn.microsoft.com/azure/virtual-network/virtual-network-manage-peering"""
    topo.virtual_networks.remove(vnet)


def delete_group(topo: Topology, group: ResourceGroup) -> None:
    """A resource group goes with everything in it; its VNets go through delete_vnet, so the other
    VNets' peerings to them meet the VNet deletion's rule. What still uses a resource of the group
    from outside (an app integrated in one of its subnets) makes validation refuse the deletion.
    https://learn.microsoft.com/azure/azure-resource-manager/management/delete-resource-group"""
    low = group.name.lower()

    def inside(resource) -> bool:
        return topo.rg_of(resource).lower() == low

    for vnet in [v for v in topo.virtual_networks if inside(v)]:
        delete_vnet(topo, vnet)
    for kind in KINDS:
        setattr(topo, kind, [r for r in getattr(topo, kind) if not inside(r)])
    topo.resource_groups = [g for g in topo.resource_groups if g.name.lower() != low]


def _address_holders(nic) -> list[tuple[str, object]]:
    """What holds each of the NIC's addresses, with a key that survives a change: the NIC itself
    for the primary configuration (its fields), each secondary configuration by its name."""
    return [("", nic)] + [(c.name.lower(), c) for c in nic.secondary_ip_configurations]


def unaddressed(topo: Topology) -> list[object]:
    """The NICs and secondary IP configurations still without an address (dynamic ones to fill)."""
    return [holder for nic in topo.network_interfaces for _key, holder in _address_holders(nic)
            if not holder.private_ip_address]


def allocate_dynamic_addresses(new: Topology, old: Topology | None) -> None:
    """Dynamic addresses (a NIC's primary configuration, or a secondary one) keep the address they
    had in the same subnet; new ones, and those of a NIC moved to another subnet, take the lowest
    free address from .4.
    Public IPs and prefixes without an address get theirs too (engine.outbound).
    https://learn.microsoft.com/azure/virtual-network/ip-services/private-ip-addresses#allocation-method"""
    allocate_public_addresses(new, old)
    previous = {n.name.lower(): n for n in (old.network_interfaces if old else [])}
    for nic in new.network_interfaces:
        before = previous.get(nic.name.lower())
        if before is None:
            continue
        moved = before.subnet.lower() != nic.subnet.lower()
        had = dict(_address_holders(before))
        for key, holder in _address_holders(nic):
            if holder.private_ip_allocation_method != "Dynamic":
                continue
            if moved:
                holder.private_ip_address = None  # moved: re-addressed in its new subnet
            elif not holder.private_ip_address and key in had:
                holder.private_ip_address = had[key].private_ip_address
    taken: dict[str, set[IPv4Address]] = {}  # per VNet, kept up to date as addresses are given
    for nic in new.network_interfaces:
        for _key, holder in _address_holders(nic):
            if holder.private_ip_address:
                taken.setdefault(nic.subnet.split("/")[0].lower(), set()).add(IPv4Address(holder.private_ip_address))
    full_below: dict[tuple[str, IPv4Network], int] = {}  # per VNet and prefix: every address below is taken
    for nic in new.network_interfaces:
        if not new.subnet(nic.subnet):
            continue
        for _key, holder in _address_holders(nic):
            if not holder.private_ip_address:
                _allocate(new, nic, holder, taken, full_below)


def _allocate(topo: Topology, nic, holder, taken: dict[str, set[IPv4Address]],
              full_below: dict[tuple[str, IPv4Network], int]) -> None:
    vnet, sn = topo.subnet(nic.subnet)
    in_vnet = taken.setdefault(vnet.name.lower(), set())
    for net in sn.networks:
        ip = lowest_free(net, in_vnet, full_below.get((vnet.name.lower(), net), 0))
        if ip is not None:
            break
    else:
        raise SubnetIsFull(f"Subnet {sn.name} with address prefix {sn.address_prefix} does not have enough "
                           "capacity for 1 IP addresses.")
    holder.private_ip_address = str(ip)
    in_vnet.add(ip)
    full_below[(vnet.name.lower(), net)] = int(ip) + 1  # taken only grows while addresses are given
