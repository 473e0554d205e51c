"""Common base of every resource model: a name, an optional resource group and location
(the lab's by default), tags. Field names are the snake_case forms of ARM property names."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=False, populate_by_name=True)


class Resource(Model):
    name: str = Field(min_length=1, max_length=80)
    resource_group: str | None = None
    location: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


def canonical_choice(value, choices) -> str:
    """``value`` spelled as the choice it names, whatever its case (Azure's enums are case-insensitive);
    a value that names none is left for the field's own check to refuse."""
    return next((c for c in choices if c.lower() == str(value).strip().lower()), value)
