"""The topology file: YAML in, YAML out, and its JSON Schema for editors.

Keys are the snake_case forms of ARM property names (``address_prefix``,
``network_security_group``, ``next_hop_ip_address``); see ``examples/`` and
``vnetlab schema``.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from pydantic import ValidationError

from .model import AzureError, Topology
from .model.errors import InvalidRequestContent, InvalidTemplate


def pydantic_error(exc: ValidationError) -> AzureError:
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"] if not str(p).startswith("function-"))
        parts.append(f"{loc}: {err['msg']}")
    return InvalidRequestContent("The lab definition is not valid: " + "; ".join(parts))


def parse(doc: dict) -> Topology:
    try:
        return Topology.model_validate(doc)
    except ValidationError as exc:
        raise pydantic_error(exc) from None


def load(path: str | Path) -> Topology:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidTemplate(f"Cannot read topology file {path}: {exc.strerror}.") from None
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise InvalidTemplate(f"Topology file {path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidTemplate(f"Topology file {path} must hold a mapping at the top.")
    if not doc:
        raise InvalidTemplate(f"Topology file {path} is empty: it must name the lab and list its resources.")
    if not str(doc.get("name") or "").strip():
        raise InvalidTemplate(f"Topology file {path} does not name its lab: add `name: LAB` at the top.")
    return parse(doc)


def dump(topo: Topology) -> str:
    return yaml.safe_dump(topo.model_dump(mode="json", exclude_defaults=True), sort_keys=False)


def schema() -> str:
    return json.dumps(Topology.model_json_schema(), indent=2)
