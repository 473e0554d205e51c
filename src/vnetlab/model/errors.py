"""One family of Azure errors (the shape of moto's ``exceptions.py``).

Every refusal is an :class:`AzureError` carrying the code and message Azure returns for the same
mistake and the HTTP status ARM answers with; the CLI prints ``(code) message`` and exits 2, the API
answers ``{"error": {"code", "message"}}`` with ``status``. Error bodies:
https://learn.microsoft.com/azure/azure-resource-manager/troubleshooting/common-deployment-errors

A code raised from more than one place has its own class here, which fixes ``code`` and ``status``
and may build its message from keyword arguments with its ``template``::

    raise ResourceNotFound(type="Microsoft.Web/sites", name="app1", group="rg1")
    raise SubnetIsFull(message="Subnet s1 ...")

A one-off code is raised as ``AzureError(message, code)`` (optionally ``status``). A failure of the
emulation itself (the kernel, a namespace that is in the way, a teardown, a probe) is a
:class:`BackendError`: the user gets its message, never a traceback.
"""

from __future__ import annotations

from typing import Any


class AzureError(Exception):
    """An Azure error: ``code``, ``message``, HTTP ``status``; the keyword arguments stay in ``details``."""

    status: int = 400
    code: str = "BadRequest"
    template: str = ""

    def __init__(self, message: str | None = None, code: str | None = None, status: int | None = None,
                 **details: Any):
        self.details = details
        self.message = message if message is not None else self.template.format(**details)
        if code:
            self.code = code
        if status:
            self.status = status
        super().__init__(self.message)

    def to_body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}

    def __str__(self) -> str:
        return f"({self.code}) {self.message}"


# -- 404: what was asked for is not there -----------------------------------------------------

class NotFound(AzureError):
    """ARM's plain ``NotFound``: a path, a child resource or a setting that does not exist."""
    status = 404
    code = "NotFound"


class LabNotFound(AzureError):
    """vnetlab's own: no lab where one was asked for (a --home, a lab's directory)."""
    status = 404
    code = "LabNotFound"


class ResourceNotFound(AzureError):
    status = 404
    code = "ResourceNotFound"
    template = ("The Resource '{type}/{name}' under resource group '{group}' was not found. "
                "For more details please go to https://aka.ms/ARMResourceNotFoundFix")


class ResourceGroupNotFound(AzureError):
    status = 404
    code = "ResourceGroupNotFound"
    template = "Resource group '{group}' could not be found."


class DeploymentNotFound(AzureError):
    status = 404
    code = "DeploymentNotFound"


class InvalidResourceReference(AzureError):
    """A property points at a resource that does not exist (where it is looked for)."""
    status = 404
    code = "InvalidResourceReference"
    template = "Resource {ref} referenced by resource {by} was not found."


# -- 409: the request collides with what exists -------------------------------------------------

class Conflict(AzureError):
    status = 409
    code = "Conflict"


class DuplicateResourceName(AzureError):
    status = 409
    code = "DuplicateResourceName"


# -- 400: the request is not valid ----------------------------------------------------------------

class InvalidRequestContent(AzureError):
    code = "InvalidRequestContent"


class InvalidTemplate(AzureError):
    code = "InvalidTemplate"


class InvalidArgumentValue(AzureError):
    """A command-line option with a value it does not take."""
    code = "InvalidArgumentValue"


class InvalidPort(AzureError):
    code = "InvalidPort"


class InvalidProtocol(AzureError):
    code = "InvalidProtocol"


class InvalidResourceGroup(AzureError):
    code = "InvalidResourceGroup"


class InvalidTargetResourceId(AzureError):
    code = "InvalidTargetResourceId"


class LocationRequired(AzureError):
    code = "LocationRequired"


class VnetAddressSpacesOverlap(AzureError):
    code = "VnetAddressSpacesOverlap"


class SubnetIsFull(AzureError):
    code = "SubnetIsFull"


class NicInUse(AzureError):
    code = "NicInUse"


class InUseSubnetCannotBeDeleted(AzureError):
    code = "InUseSubnetCannotBeDeleted"


# -- the emulation itself -----------------------------------------------------------------------

class BackendError(AzureError):
    """The emulation failed (kernel tool, namespace in the way, teardown, probe). Derive the backend's
    own errors from this one: the CLI prints the message and exits 2, the API answers 500."""
    status = 500
    code = "EmulationError"


class EmulationUnavailable(BackendError):
    """The emulation cannot run on this machine (not Linux, not root, a tool missing)."""
    status = 400
    code = "EmulationUnavailable"


class EmulationNotRunning(BackendError):
    """A command that needs the lab on the real kernel (exec, capture, matrix --backend netns)
    on a lab that is not up with ``--backend netns``."""
    status = 400
    code = "EmulationNotRunning"
