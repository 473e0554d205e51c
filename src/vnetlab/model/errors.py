"""Typed Azure errors.

Every validation failure is an :class:`AzureError` carrying the code and message that Azure
returns for the same mistake, and the HTTP status ARM uses. The CLI prints it and exits 2;
the API answers ``{"error": {"code", "message"}}`` with ``status``.
"""

from __future__ import annotations


class AzureError(Exception):
    status = 400
    code = "BadRequest"

    def __init__(self, message: str, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status

    def to_body(self) -> dict:
        return {"error": {"code": self.code, "message": self.message}}

    def __str__(self) -> str:
        return f"({self.code}) {self.message}"


class InvalidRequest(AzureError):
    code = "InvalidRequestFormat"


class NotFound(AzureError):
    status = 404
    code = "ResourceNotFound"


class Conflict(AzureError):
    status = 409
    code = "Conflict"


class InUse(AzureError):
    status = 400
    code = "InUseSubnetCannotBeDeleted"
