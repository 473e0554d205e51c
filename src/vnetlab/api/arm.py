"""What every ARM handler shares: errors, the case-insensitive router, request bodies, ETags.

ARM conventions mirrored here:
- error bodies ``{"error": {"code", "message"}}``
  https://learn.microsoft.com/azure/azure-resource-manager/management/common-deployment-errors
- paths are case-insensitive, ids keep the case the resource was created with;
- ETags with If-Match / If-None-Match, 412 PreconditionFailed
  https://learn.microsoft.com/rest/api/storageservices/specifying-conditional-headers-for-blob-service-operations
"""

from __future__ import annotations

import gc
import hashlib
import json
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..model.errors import AzureError, NotFound, ResourceGroupNotFound

MAX_BODY = 4 * 1024 * 1024
# Top-level members of an ARM resource definition; anything else is a client mistake (for
# example a snake_case dict handed to the TypeSpec SDKs, which send it verbatim).
TOP_LEVEL_KEYS = frozenset({"location", "tags", "properties", "sku", "kind", "identity", "id", "name", "type",
                            "etag", "zones", "extendedLocation", "managedBy", "plan"})
_TOP_LEVEL_LOWER = {k.lower(): k for k in TOP_LEVEL_KEYS}
_TOP_LEVEL_TYPES = {"location": str, "tags": dict, "properties": dict, "sku": dict, "kind": str, "identity": dict,
                    "zones": list, "extendedLocation": dict, "managedBy": str, "plan": dict}


class ArmError(AzureError):
    """An error only the ARM endpoint raises (an HTTP matter such as a method, a token, an ETag),
    with the response ``headers`` it needs. Every :class:`AzureError` is answered alike."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message, code, status)
        self.headers = headers or {}


def bad_request(message: str, code: str = "InvalidRequestContent") -> AzureError:
    return AzureError(message, code, 400)


def invalid_content(detail: str) -> AzureError:
    return bad_request(f"The request content was invalid and could not be deserialized: '{detail}'.")


def group_not_found(rg: str) -> AzureError:
    return ResourceGroupNotFound(group=rg)


def precondition_failed() -> ArmError:
    return ArmError(412, "PreconditionFailed", "The condition specified using HTTP conditional header(s) is not met.")


# -- responses -------------------------------------------------------------------------------

def dumps(body: Any) -> bytes:
    """Compact UTF-8 JSON. orjson: a list of 1,000 NSGs of 200 rules is 120 MB of it, and each
    resource and rule is also serialized once more for its ETag (``etag_of``)."""
    return orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status, headers, media_type="application/json; charset=utf-8")


def error_response(err: AzureError) -> Response:
    return json_response(err.to_body(), err.status, getattr(err, "headers", None))


def etag_of(resource: dict) -> str:
    """A weak ETag derived from the resource's canonical JSON, shaped like Network's W/"<guid>"."""
    canon = {k: v for k, v in resource.items() if k != "etag"}
    digest = hashlib.sha256(orjson.dumps(canon, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)).digest()
    h = digest[:16].hex()   # str(uuid.UUID(bytes=digest[:16])) at a quarter of the cost (a list has 200,000)
    return f'W/"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"'


def with_etag(resource: dict) -> dict:
    return {**resource, "etag": etag_of(resource)}


def resource_response(resource: dict, status: int = 200) -> Response:
    body = with_etag(resource)
    return json_response(body, status, {"ETag": body["etag"]})


def list_response(items: Iterable[dict]) -> Response:
    with gc_paused():
        return json_response({"value": [with_etag(r) for r in items]})


_gc_lock = threading.Lock()
_gc_pauses = [0, False]   # pauses running, whether the collector was enabled before the first


@contextmanager
def gc_paused():
    """The cyclic garbage collector off while a list is built: its millions of new (acyclic) dicts
    would otherwise start a collection every few hundred allocations, and the older generations'
    collections walk the whole compiled lab (a third of the time of listing 1,000 NSGs). Nested
    and concurrent pauses share one; the last to end turns it back on if it was on."""
    with _gc_lock:
        if _gc_pauses[0] == 0:
            _gc_pauses[1] = gc.isenabled()
            gc.disable()
        _gc_pauses[0] += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses[0] -= 1
            if _gc_pauses[0] == 0 and _gc_pauses[1]:
                gc.enable()


# -- conditional requests --------------------------------------------------------------------

def _tags(header: str) -> set[str]:
    # Weak comparison: W/"x" and "x" name the same version.
    return {t.strip().removeprefix("W/").strip() for t in header.split(",") if t.strip()}


def conditional(headers) -> bool:
    return "if-match" in headers or "if-none-match" in headers


def check_preconditions(headers, current: dict | None) -> None:
    """Raise 412 when If-Match / If-None-Match rule the write out, given the current resource."""
    if_match, if_none = headers.get("if-match"), headers.get("if-none-match")
    etag = etag_of(current).removeprefix("W/") if current is not None else None
    if if_match:
        tags = _tags(if_match)
        if etag is None or ("*" not in tags and etag not in tags):
            raise precondition_failed()
    if if_none and etag is not None:
        tags = _tags(if_none)
        if "*" in tags or etag in tags:
            raise precondition_failed()


def not_modified(headers, current: dict) -> bool:
    """GET with If-None-Match naming the current version: answer 304."""
    if_none = headers.get("if-none-match")
    return bool(if_none) and etag_of(current).removeprefix("W/") in _tags(if_none)


# -- requests --------------------------------------------------------------------------------

@dataclass
class Call:
    """One request as a handler sees it."""

    request: Request
    params: dict[str, str]
    body: bytes = b""
    subscription: str = ""      # the lab's subscription id (a {sub} in the path has been checked against it)
    _json: Any = field(default=None, repr=False)

    @property
    def method(self) -> str:
        return self.request.method

    @property
    def headers(self):
        return self.request.headers

    @property
    def base_url(self) -> str:
        """https://host:port, as the client reached us (no trailing slash)."""
        return f"{self.request.url.scheme}://{self.request.headers.get('host') or self.request.url.netloc}"

    def json(self) -> Any:
        if self._json is None:
            self._json = parse_json(self.body)
        return self._json

    def resource_body(self) -> dict:
        return check_resource_body(self.json())


def parse_json(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise invalid_content(f"The request body is not valid UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        raise invalid_content(f"{exc.msg}. Path '', line {exc.lineno}, position {exc.colno}") from None


def check_resource_body(doc: Any) -> dict:
    """An ARM resource definition: a JSON object with the known top-level members of the right types.
    Member names are matched case-insensitively (ARM's JSON.NET does) and returned canonical."""
    if not isinstance(doc, dict):
        raise invalid_content(f"Unexpected JSON token {type(doc).__name__}: the request body must be a JSON object. "
                              "Path '', line 1, position 1")
    out = {}
    for key, value in doc.items():
        canon = _TOP_LEVEL_LOWER.get(key.lower())
        if canon is None:
            raise invalid_content(f"Could not find member '{key}' on object of type 'ResourceDefinition'. "
                                  f"Path '{key}', line 1, position 1")
        want = _TOP_LEVEL_TYPES.get(canon)
        if value is not None and want is not None and not isinstance(value, want):
            raise invalid_content(f"Error converting value to type '{want.__name__}' for member '{canon}'. "
                                  f"Path '{canon}', line 1, position 1")
        out[canon] = value
    tags = out.get("tags") or {}
    if any(not isinstance(v, str) for v in tags.values()):
        raise invalid_content("Tag values must be strings. Path 'tags', line 1, position 1")
    return out


async def read_body(request: Request, limit: int = MAX_BODY) -> bytes:
    too_large = ArmError(413, "RequestEntityTooLarge",
                         f"The request content size exceeds the maximum allowed size of {limit} bytes.")
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


# -- routing ---------------------------------------------------------------------------------

Handler = Callable[[Call], Response]


@dataclass(frozen=True)
class Route:
    methods: frozenset[str]
    segments: tuple[str, ...]   # lower-case literals, or "{name}" captures
    handler: Handler
    auth: bool = True           # False for the discovery and token endpoints
    blocking: bool = False      # True when the handler does I/O (run it in a worker thread)

    @property
    def literals(self) -> int:
        return sum(not s.startswith("{") for s in self.segments)


class Router:
    """Matches path segments case-insensitively; captures keep the client's spelling."""

    def __init__(self) -> None:
        self._by_len: dict[int, list[Route]] = {}

    def add(self, methods: str, pattern: str, handler: Handler, *, auth: bool = True, blocking: bool = False) -> None:
        segs = tuple(s if s.startswith("{") else s.lower() for s in pattern.strip("/").split("/"))
        route = Route(frozenset(methods.upper().split()), segs, handler, auth, blocking)
        bucket = self._by_len.setdefault(len(segs), [])
        bucket.append(route)
        bucket.sort(key=lambda r: -r.literals)  # the most specific pattern wins

    def include(self, other: "Router") -> None:
        for routes in other._by_len.values():
            for r in routes:
                bucket = self._by_len.setdefault(len(r.segments), [])
                bucket.append(r)
                bucket.sort(key=lambda x: -x.literals)

    def match(self, method: str, path: str, api_version: str = "") -> tuple[Route, dict[str, str]]:
        parts = [p for p in path.split("/") if p]
        lowered = [p.lower() for p in parts]
        allowed: dict[str, tuple[Route, dict[str, str]]] = {}
        for route in self._by_len.get(len(parts), ()):
            params = _match(route.segments, parts, lowered)
            if params is None:
                continue
            if method in route.methods:
                return route, params
            for m in route.methods:
                allowed.setdefault(m, (route, params))
        if method == "HEAD" and "GET" in allowed:  # HEAD is GET without the body (Starlette drops it)
            return allowed["GET"]
        if allowed:
            raise ArmError(405, "HttpMethodNotAllowed",
                           f"The requested resource does not support http method '{method}'.",
                           {"Allow": ", ".join(sorted(allowed))})
        raise no_route(path, api_version)


def _match(segments: tuple[str, ...], parts: list[str], lowered: list[str]) -> dict[str, str] | None:
    params = {}
    for seg, part, low in zip(segments, parts, lowered, strict=True):
        if seg[0] == "{":
            params[seg[1:-1]] = part
        elif seg != low:
            return None
    return params


def no_route(path: str, api_version: str = "") -> AzureError:
    parts = [p for p in path.split("/") if p]
    low = [p.lower() for p in parts]
    if "providers" in low:
        i = low.index("providers")
        if len(parts) > i + 2:
            ns, type_ = parts[i + 1], "/".join(parts[i + 2::2])
            version = f" for api version '{api_version}'" if api_version else ""
            return ArmError(400, "InvalidResourceType",
                            f"The resource type '{type_}' could not be found in the namespace '{ns}'{version}.")
    return NotFound(f"No HTTP resource was found that matches the request URI '{path}'.")
