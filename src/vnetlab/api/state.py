"""The lab behind the endpoint, and how request bodies are read into it.

Every write goes through :meth:`vnetlab.lab.Lab.change`: one SQLite transaction that also runs
Azure's validation, so a failed request changes nothing and concurrent writers (the API, the
CLI) are serialized. Reads are served from the last topology read, reloaded when the store's
version moves.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any, Callable

from ..model.errors import AzureError, InvalidResourceReference, ResourceNotFound
from ..engine.network import LabView
from ..lab import Lab
from ..model import Topology
from ..model.ids import TYPES, parse_id
from .arm import ArmError, bad_request, group_not_found, invalid_content


class LabState:
    def __init__(self, home: str | Path):
        self.lab = Lab.open(home)
        self._write_lock = threading.Lock()
        self._local = threading.local()

    def version(self) -> int:
        """The store's version, on a connection kept per thread (opening one costs more than the query)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = sqlite3.connect(self.lab.store.path, timeout=30, isolation_level=None)
        row = conn.execute("SELECT version FROM topology WHERE id = 1").fetchone()
        return row[0] if row else 0

    def read(self) -> Topology:
        """The current lab. Treat it as read-only: it is shared between requests (and with the
        compiled network, :meth:`Lab.network`), parsed once per store version."""
        return self.lab.snapshot(self.version())

    def network(self) -> LabView:
        """The compiled lab of the current version, built once per version."""
        return self.lab.network(self.version())

    def is_current(self) -> bool:
        """Reads are answered from memory: the lab of the store's version is parsed. When not, a
        request runs in a worker thread, not on the event loop, while that is done."""
        return self.lab.is_current(self.version())

    def change(self, fn: Callable[[Topology], Any]) -> Topology:
        """Run ``fn`` on a copy of the lab inside one transaction; validate and save."""
        def apply(topo: Topology) -> Topology:
            fn(topo)
            return topo

        # SQLite serializes writers anyway, but a writer that finds the database locked sleeps in
        # its busy handler for milliseconds; queueing here first wakes the next one at once.
        with self._write_lock:
            return self.lab.change(apply)

    @property
    def subscription(self) -> str:
        return self.read().subscription_id


# -- lookups ----------------------------------------------------------------------------------

def require_group(topo: Topology, rg: str) -> str:
    """The group's canonical name, or 404 ResourceGroupNotFound."""
    group = topo.group(rg)
    if group is None:
        raise group_not_found(rg)
    return group.name


def find(topo: Topology, kind: str, rg: str, name: str):
    """A top-level resource by resource group and name (both case-insensitive)."""
    res = topo.find(kind, name)
    if res is None or topo.rg_of(res).lower() != rg.lower():
        return None
    return res


def resource_not_found(kind: str, rg: str, name: str) -> AzureError:
    """404 ResourceNotFound for a top-level resource of ``kind``, named by its ARM type."""
    namespace, type_ = TYPES[kind]
    return ResourceNotFound(type=f"{namespace}/{type_}", name=name, group=rg)


def require_resource(topo: Topology, kind: str, rg: str, name: str):
    """A top-level resource by resource group and name, as a request's path names it: 404
    ResourceGroupNotFound without the group, 404 ResourceNotFound without the resource in it."""
    group = require_group(topo, rg)
    res = find(topo, kind, group, name)
    if res is None:
        raise resource_not_found(kind, group, name)
    return res


def guid(resource_id: str) -> str:
    """A stable resourceGuid for an id (Azure's are random; ours must not change between reads)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "vnetlab:" + resource_id.lower()))


def sub_resource(resource_id: str | None) -> dict | None:
    return {"id": resource_id} if resource_id else None


# -- request bodies --------------------------------------------------------------------------

class Obj:
    """A JSON object of a request body, read the way ARM reads one: member names are matched
    case-insensitively, a value of the wrong type is a 400 naming its path, null means absent."""

    def __init__(self, data: Any, path: str):
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise _type_error(data, "Object", path)
        self.data, self.path = data, path
        self._keys = {k.lower(): k for k in data}

    def __contains__(self, key: str) -> bool:
        k = self._keys.get(key.lower())
        return k is not None and self.data[k] is not None

    def raw(self, key: str) -> Any:
        k = self._keys.get(key.lower())
        return None if k is None else self.data[k]

    def _typed(self, key: str, types, type_name: str, default):
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in _as_tuple(types)):
            raise _type_error(value, type_name, f"{self.path}.{key}")
        return value

    def str(self, key: str, default: str | None = None) -> str | None:
        value = self.raw(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):  # JSON.NET converts numbers
            return str(value)
        return self._typed(key, str, "String", default)

    def bool(self, key: str, default: bool | None = None) -> bool | None:
        value = self.raw(key)
        if isinstance(value, str) and value.lower() in ("true", "false"):  # JSON.NET converts these
            return value.lower() == "true"
        return self._typed(key, bool, "Boolean", default)

    def int(self, key: str, default: int | None = None) -> int | None:
        value = self.raw(key)
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return self._typed(key, int, "Int32", default)

    def obj(self, key: str) -> "Obj":
        return Obj(self.raw(key), f"{self.path}.{key}")

    def list(self, key: str) -> list:
        return self._typed(key, list, "Array", [])

    def objs(self, key: str) -> list["Obj"]:
        return [Obj(item, f"{self.path}.{key}[{i}]") for i, item in enumerate(self.list(key))]

    def strs(self, key: str) -> list[str]:
        items = self.list(key)
        for i, item in enumerate(items):
            if not isinstance(item, str):
                raise _type_error(item, "String", f"{self.path}.{key}[{i}]")
        return items

    def ref(self, key: str) -> str | None:
        """The id of a sub-resource reference ``{"id": "..."}``."""
        return self.obj(key).str("id") if key in self else None


def _as_tuple(types) -> tuple:
    return types if isinstance(types, tuple) else (types,)


def _type_error(value: Any, type_name: str, path: str) -> ArmError:
    shown = value if isinstance(value, (int, float, bool)) else type(value).__name__
    return invalid_content(f"Error converting value {shown!r} to type '{type_name}'. Path '{path}'")


def require(value: Any, path: str) -> Any:
    if value is None or value == "":
        raise bad_request(f"The request is missing the required property '{path}'.", "InvalidRequestFormat")
    return value


def parse_ref(rid: str, namespace: str, types: tuple[str, ...], path: str, topo: Topology) -> tuple[str, ...]:
    """The names in a reference id to a resource of the given type, e.g.
    (vnet, subnet) from a subnet id. A malformed id or one of another type is a 400."""
    parsed = parse_id(rid)
    ok = (parsed is not None and parsed.namespace.lower() == namespace.lower()
          and tuple(t.lower() for t in parsed.types) == tuple(t.lower() for t in types))
    if not ok:
        expected = f"/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}/providers/{namespace}/" \
                   + "/".join(f"{t}/{{name}}" for t in types)
        raise ArmError(400, "LinkedInvalidPropertyId",
                       f"Property id '{rid}' at path '{path}' is invalid. Expect fully qualified resource Id "
                       f"that start with '/subscriptions/{{subscriptionId}}' of the form '{expected}'.")
    if parsed.subscription.lower() != topo.subscription_id.lower():
        raise InvalidResourceReference(f"Resource {rid} referenced by {path} was not found: it is in another "
                                       "subscription.", status=400)
    return parsed.names + (parsed.resource_group,)


def check_ref_group(topo: Topology, kind: str, name: str, rg: str, rid: str, path: str) -> None:
    """A reference whose resource exists under another resource group does not point at it."""
    res = topo.find(kind, name)
    if res is not None and topo.rg_of(res).lower() != rg.lower():
        raise InvalidResourceReference(f"Resource {rid} referenced by {path} was not found.")
