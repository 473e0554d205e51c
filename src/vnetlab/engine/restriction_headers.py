"""The HTTP header filters of a web app's access restriction rules: whether a request's headers satisfy
a rule's, and which of a site's header-dependent decisions a request gets.

Standard library only, no package import: the emulated front end (``backends/netns/services.py``, run
isolated without site-packages) loads this file by its path and decides each request with these same
functions; ``engine.inbound`` uses them for the trace. One rule, one place.

"The http header filters are evaluated after the rule itself and both conditions must be true for the
rule to apply." https://learn.microsoft.com/azure/app-service/app-service-ip-restrictions#filter-by-http-header
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network


def headers_match(wanted: dict, sent) -> bool:
    """Every header ``wanted`` names (name -> its values; a name without values asks nothing) is in the
    request ``sent`` (any mapping with ``items()``, names in any case) with one of its values:
    X-Forwarded-For any address of the chain in one of the ranges; X-Forwarded-Host case-insensitive,
    ``*.`` a subdomain wildcard; X-Azure-FDID and X-FD-HealthProbe exact.
    https://learn.microsoft.com/azure/app-service/overview-access-restrictions#http-header-filtering-for-site-access-restriction-rules"""
    got_all = {str(k).lower(): str(v) for k, v in (sent.items() if sent else ())}
    for name, values in (wanted or {}).items():
        if not values:
            continue
        got = got_all.get(name.lower())
        if got is None:
            return False
        if name.lower() == "x-forwarded-for":
            chain = [_address(x) for x in got.split(",")]
            if not any(ip is not None and ip in IPv4Network(v, strict=False) for ip in chain for v in values):
                return False
        elif name.lower() == "x-forwarded-host":
            if not any(_host_matches(got.strip().lower(), v.lower()) for v in values):
                return False
        elif got.strip() not in values:
            return False
    return True


def first_match(cases, sent):
    """The decision of the first case whose headers the request carries. ``cases``: ``(headers, decision)``
    pairs in the order the site evaluates them, ending with a case without headers (the rule without
    header filters, or the default action), so that every request gets one."""
    for wanted, decision in cases:
        if headers_match(wanted, sent):
            return decision
    raise ValueError("the cases end with no case that every request matches")


def _address(text: str) -> IPv4Address | None:
    try:
        return IPv4Address(text.strip())
    except ValueError:
        return None


def _host_matches(host: str, pattern: str) -> bool:
    if pattern.startswith("*."):
        return host.endswith(pattern[1:])
    return host == pattern
