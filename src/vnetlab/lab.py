"""The service layer: the verbs of a lab over its store, each change one transaction.

``Lab.change(fn)`` reads the lab, applies ``fn`` to a copy, allocates dynamic addresses,
checks Azure's rules (:mod:`vnetlab.validation`) against the lab as it was, and writes it
back, all inside one SQLite ``BEGIN IMMEDIATE`` transaction: a failure leaves the lab as it
was, and concurrent writers are serialized. The backend (``sim`` or ``netns``) is then told
to realize the new lab.
"""

from __future__ import annotations

import os
from ipaddress import IPv4Address
from typing import Callable

from pydantic import ValidationError

from .engine.addressing import lowest_free
from .engine.network import Network
from .engine.trace import Trace, trace
from .model import AzureError, Topology
from .store import Store
from .topology import parse, pydantic_error
from .validation import validate

BACKENDS = ("sim", "netns")


class Lab:
    def __init__(self, store: Store):
        self.store = store
        self._net: tuple[int, Network] | None = None

    @classmethod
    def open(cls, home: str | os.PathLike | None = None) -> "Lab":
        return cls(Store.open(home))

    @property
    def home(self):
        return self.store.home

    # -- reading -------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.store.load() is not None

    def topology(self) -> Topology:
        doc = self.store.load()
        return parse(doc) if doc is not None else Topology()

    def network(self) -> Network:
        version = self.store.version()
        if self._net is None or self._net[0] != version:
            self._net = (version, Network(self.topology()))
        return self._net[1]

    def trace(self, source: str, destination: str, port: int | None = None, protocol: str = "Tcp") -> Trace:
        return trace(self.network(), source, destination, port, protocol)

    @property
    def backend_name(self) -> str:
        return self.store.get_meta("backend") or "sim"

    # -- changing ------------------------------------------------------------------------
    def change(self, fn: Callable[[Topology], Topology | None], create: bool = True) -> Topology:
        with self.store.write() as tx:
            doc = tx.load()
            if doc is None and not create:
                raise AzureError("There is no lab here: run `vnetlab up FILE` first.", "LabNotFound", 404)
            old = parse(doc) if doc is not None else None
            draft = parse(doc) if doc is not None else Topology()  # a second parse is cheaper than a deep copy
            new = fn(draft) or draft
            try:
                new = Topology.model_validate(new.model_dump())
            except ValidationError as exc:
                raise pydantic_error(exc) from None
            allocate_dynamic_addresses(new, old)
            validate(new, old)
            if old is not None and new == old:
                return old
            tx.save(new.model_dump(mode="json"))
        self._after_change(old, new)
        return new

    def up(self, desired: Topology, backend: str | None = None) -> Topology:
        if backend is not None and backend not in BACKENDS:
            raise AzureError(f"Unknown backend '{backend}': use sim or netns.", "InvalidBackend")
        if backend == "netns":
            from .backends import netns_backend
            netns_backend.check()
        if backend is not None:
            self.store.set_meta("backend", backend)
        topo = self.change(lambda _old: desired.model_copy(deep=True))
        from .backends import backend_for
        realized = backend_for(self)
        if not getattr(realized, "in_sync", lambda lab: True)(self):
            realized.apply(self, topo)  # unchanged file, but the last apply did not finish (crash)
        return topo

    def down(self) -> bool:
        existed = self.exists()
        from .backends import backend_for
        backend_for(self).teardown(self)
        with self.store.write() as tx:
            tx.delete()
        self.store.set_meta("backend", "sim")
        self._net = None
        return existed

    def _after_change(self, old: Topology | None, new: Topology) -> None:
        from .backends import backend_for
        backend_for(self).apply(self, new)


def allocate_dynamic_addresses(new: Topology, old: Topology | None) -> None:
    """Dynamic NICs keep the address they had; new ones take the lowest free from .4."""
    previous = {n.name.lower(): n for n in (old.network_interfaces if old else [])}
    for nic in new.network_interfaces:
        before = previous.get(nic.name.lower())
        if nic.private_ip_allocation_method == "Dynamic" and not nic.private_ip_address and before is not None \
                and before.subnet.lower() == nic.subnet.lower():
            nic.private_ip_address = before.private_ip_address
    for nic in new.network_interfaces:
        if nic.private_ip_address or not new.subnet(nic.subnet):
            continue
        vnet, sn = new.subnet(nic.subnet)
        taken = {IPv4Address(n.private_ip_address) for n in new.network_interfaces
                 if n.private_ip_address and n.subnet.split("/")[0].lower() == vnet.name.lower()}
        ip = lowest_free(sn.network, taken)
        if ip is None:
            raise AzureError(f"Subnet {sn.name} with address prefix {sn.address_prefix} does not have enough "
                             "capacity for 1 IP addresses.", "SubnetIsFull")
        nic.private_ip_address = str(ip)
