"""The ARM-shaped application.

One catch-all route feeds a case-insensitive dispatcher (:class:`vnetlab.api.arm.Router`):
ARM matches paths without regard to case, and the SDKs disagree on it (``resourcegroups`` in
the resource SDK, ``resourceGroups`` in network and web). Any api-version is accepted,
because the az CLI mixes several even for one resource type.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..model.errors import AzureError, InvalidRequestContent
from . import (compute, deployments, discovery, gateways, groups, keyvault, network, private_endpoints, private_link, privatedns,
               public_ips, resources, sql, stacks, storage, vnet_tools, watcher, web)
from .arm import ArmError, Call, Router, error_response, read_body
from .state import LabState

log = logging.getLogger("vnetlab.api")
METHODS = ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"]
_WITH_BODY = frozenset({"PUT", "PATCH", "POST"})


def create_app(lab_home: Path, require_token: str | None = None, backend: str | None = None) -> FastAPI:
    """The ASGI app serving the lab at ``lab_home`` in ARM's terms. ``backend="netns"`` makes the
    lab's changes apply to its emulation; otherwise the lab keeps the backend it was brought up with."""
    state = LabState(lab_home)
    if backend == "netns":
        state.lab.switch_backend("netns")
    router = build_router(state, require_token)
    app = FastAPI(title="vnetlab ARM endpoint", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.lab_home, app.state.lab_state, app.state.router = Path(lab_home), state, router

    async def endpoint(request: Request) -> Response:
        response = await dispatch(router, state, request, require_token)
        client_id = request.headers.get("x-ms-client-request-id")
        request_id = str(uuid.uuid4())
        response.headers["x-ms-request-id"] = request_id
        response.headers["x-ms-correlation-request-id"] = client_id or request_id
        if client_id:
            response.headers["x-ms-client-request-id"] = client_id
        return response

    from ..ui import routes as page_routes
    app.router.routes.extend(page_routes(lambda: state.lab))  # the web page at /, before ARM's catch-all
    app.router.add_route("/{path:path}", endpoint, methods=METHODS, include_in_schema=False)
    return app


def build_router(state: LabState, require_token: str | None) -> Router:
    router = Router()
    router.include(discovery.router(require_token, web.site_exists(state)))
    for family in (groups.handlers(state), network.router(state), compute.router(state), web.router(state),
                   watcher.router(state), privatedns.router(state), private_endpoints.router(state),
                   storage.router(state), sql.router(state), keyvault.router(state), private_link.router(state),
                   gateways.router(state)):
        router.include(family)
    router.include(public_ips.router(state))
    router.include(resources.router(state))
    router.include(vnet_tools.router(state))
    router.include(stacks.router(state))
    router.include(deployments.Deployments(state, internal_dispatch(router), supports(router)).router())
    return router


def supports(router: Router):
    def has_route(method: str, path: str) -> bool:
        try:
            router.match(method, path)
        except ArmError:
            return False
        return True

    return has_route


def internal_dispatch(router: Router):
    """One request made from inside the endpoint (a template's resource), answered as a client's is."""

    def dispatch_one(outer: Call, method: str, path: str, body: bytes) -> Response:
        try:
            route, params = router.match(method, path)
            return route.handler(Call(outer.request, params, body, outer.subscription))
        except AzureError as err:  # ArmError or any typed refusal (validation, references)
            return error_response(err)
        except Exception as exc:  # noqa: BLE001 - as in dispatch(): typed errors become ARM errors
            mapped = map_error(exc)
            if mapped is None:
                raise
            return error_response(mapped)

    return dispatch_one


async def dispatch(router: Router, state: LabState, request: Request, require_token: str | None) -> Response:
    try:
        try:
            route, params = router.match(request.method, request.url.path,
                                         request.query_params.get("api-version", ""))
        except AzureError:
            check_auth(request, require_token)  # an unauthenticated caller learns nothing about paths
            raise
        if route.auth:
            check_auth(request, require_token)
        body = await read_body(request) if request.method in _WITH_BODY else b""
        call = Call(request, params, body)

        def run() -> Response:
            if route.auth:
                call.subscription = _subscription(state, params)
            return route.handler(call)

        # I/O, or parsing and compiling a new version of the lab: off the event loop
        return await run_in_threadpool(run) if route.blocking or not state.is_current() else run()
    except AzureError as err:
        return error_response(err)
    except Exception as exc:  # noqa: BLE001 - the last line of defence; bad input never lands here
        mapped = map_error(exc)
        if mapped is not None:
            return error_response(mapped)
        log.exception("internal error on %s %s", request.method, request.url.path)
        return error_response(ArmError(500, "InternalServerError", f"{type(exc).__name__}: {exc}"))


def _subscription(state: LabState, params: dict[str, str]) -> str:
    sub = state.subscription
    if "sub" in params and params["sub"].lower() != sub.lower():
        raise discovery.subscription_not_found(params["sub"])
    return sub


def map_error(exc: Exception) -> AzureError | None:
    """Pydantic's validation errors as ARM errors."""
    try:
        from pydantic import ValidationError
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, ValidationError):
        from ..topology import pydantic_error
        azure = pydantic_error(exc)
        if azure.code != "InvalidRequestContent":  # a model validator gave Azure's code and text
            return azure
        first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return InvalidRequestContent(f"{first['msg']}" + (f" ({where})" if where else ""))
    return None


def check_auth(request: Request, require_token: str | None) -> None:
    """Any bearer token is accepted unless the server was started with --require-token."""
    if require_token is None:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized("Authentication failed. The 'Authorization' header is missing or not a bearer token.")
    if not discovery.token_is_valid(token, require_token):
        raise _unauthorized("The access token is invalid.")


def _unauthorized(message: str) -> ArmError:
    return ArmError(401, "InvalidAuthenticationToken", message,
                    {"WWW-Authenticate": 'Bearer authorization_uri="", error="invalid_token", '
                                         f'error_description="{message}"'})
