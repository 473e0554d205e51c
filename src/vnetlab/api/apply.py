"""ARM resources put into a lab in memory, by type: the one mapping from ARM's shapes to the model.

The endpoint's PUT handlers read a body with the same functions (``TopLevel.put_into``,
``Child.put_into``, the site settings of :mod:`.web`); here they are reached by resource type and
id, without HTTP, for ``vnetlab import`` and for a deployment's validate and what-if, which
deploy a template into a copy of the lab (:class:`LabTarget`).
https://learn.microsoft.com/azure/azure-resource-manager/management/resource-manager-rest-api
"""

from __future__ import annotations

from pydantic import ValidationError

from ..model import Topology
from ..model.errors import AzureError
from ..model.ids import parse_id
from ..topology import pydantic_error
from .arm import check_resource_body, with_etag
from .resource import CHILD_KINDS, Child, TopLevel, check_name
from .resources import TYPES
from .state import Obj, find, require_group
from .template import Declared
from .web import SITE_SETTINGS, SITES

# The types `az resource list` and `az group export` know (resources.TYPES), and their children.
TOP_LEVEL: dict[str, TopLevel] = {t.arm_type.lower(): t for t in TYPES}
CHILDREN: dict[str, Child] = {c.arm_type.lower(): c for c in CHILD_KINDS if c.parent.arm_type.lower() in TOP_LEVEL}
SITE_CHILD_TYPES = {f"{SITES.arm_type}/{segment}".lower(): segment for segment, _ in SITE_SETTINGS}
# The order resources of a list are put in: what a resource refers to comes first.
RANK = {t: i for i, t in enumerate([*TOP_LEVEL, *CHILDREN, *SITE_CHILD_TYPES])}


class UnknownType(AzureError):
    """A resource type vnetlab does not model."""

    code = "NoRegisteredProviderFound"


def supported(type_: str) -> bool:
    low = type_.lower()
    return low in TOP_LEVEL or low in CHILDREN or low in SITE_CHILD_TYPES


def put(topo: Topology, type_: str, rid: str, body: dict) -> None:
    """Put the resource ``rid`` of ``type_`` described by ``body`` (ARM's shape) into ``topo``,
    as its PUT would (its group must exist). Raises the PUT's AzureError, or UnknownType."""
    try:
        _put(topo, type_, rid, body)
    except ValidationError as exc:  # a model's own check (a prefix, an address): Azure's code when it has one
        raise pydantic_error(exc) from None


def _put(topo: Topology, type_: str, rid: str, body: dict) -> None:
    low = type_.lower()
    parsed = parse_id(rid)
    if parsed is None or not supported(type_):
        raise UnknownType(f"vnetlab does not model resources of type '{type_}'.")
    rg, names = require_group(topo, parsed.resource_group), parsed.names
    for name in names:
        check_name(name)
    doc = Obj(check_resource_body({k: v for k, v in body.items() if k.lower() not in ("id", "type", "name")}), "")
    if low in TOP_LEVEL:
        TOP_LEVEL[low].put_into(topo, rg, names[0], doc)
        return
    owner = TOP_LEVEL[SITES.arm_type.lower()] if low in SITE_CHILD_TYPES else CHILDREN[low].parent
    parent = find(topo, owner.kind, rg, names[0])
    if parent is None:
        raise owner.not_found(rg, names[0])
    if low in CHILDREN:
        CHILDREN[low].put_into(topo, parent, names[1], doc)
        return
    apply = SITE_SETTINGS.get((SITE_CHILD_TYPES[low], names[1].lower()))
    if apply is None:
        raise UnknownType(f"vnetlab does not model '{type_}' named '{names[1]}' (only "
                          f"{', '.join(f'{s}/{n}' for s, n in SITE_SETTINGS)}).")
    apply(topo, parent, doc.obj("properties"))


def get(topo: Topology, rid: str) -> dict | None:
    """The resource ``rid`` as its GET answers, None when the lab does not hold it."""
    parsed = parse_id(rid)
    if parsed is None or not parsed.types:
        return None
    top = TOP_LEVEL.get(f"{parsed.namespace}/{parsed.types[0]}".lower())
    res = find(topo, top.kind, parsed.resource_group, parsed.names[0]) if top else None
    if res is None:
        return None
    if len(parsed.types) == 1:
        return with_etag(top.to_wire(topo, res))
    child = CHILDREN.get(f"{parsed.namespace}/{'/'.join(parsed.types[:2])}".lower())
    item = child._find(res, parsed.names[1]) if child and len(parsed.types) == 2 else None
    return with_etag(child.to_wire(topo, res, item)) if item is not None else None


class LabTarget:
    """A template deployed into a lab in memory (:func:`vnetlab.api.template.run`'s target)."""

    def __init__(self, topo: Topology):
        self.topo = topo

    def put(self, resource: Declared, body: dict) -> None:
        put(self.topo, resource.type, resource.id, body)

    def get(self, resource_id: str) -> dict | None:
        return get(self.topo, resource_id)
