"""How the in-process rtnetlink client encodes addresses and prefixes (no root needed): the same
values as Python's ``ipaddress``, which is the reference here, for every address and length."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from vnetlab.backends.netns.netlink import _prefix

SEEN: set[str] = set()


def _reference(cidr: str, strict: bool):
    try:
        if strict:
            net = ipaddress.IPv4Network(cidr)
            return net.network_address.packed, net.prefixlen
        iface = ipaddress.IPv4Interface(cidr)
        return iface.ip.packed, iface.network.prefixlen
    except ValueError:
        return "refused"


def _ours(cidr: str, strict: bool):
    try:
        return _prefix(cidr, strict=strict)
    except ValueError:
        return "refused"


@settings(max_examples=1000, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 32) | st.integers(33, 40) | st.none(), st.booleans())
def test_prefixes_are_encoded_as_ipaddress_parses_them(value, length, strict):
    text = str(ipaddress.IPv4Address(value)) + ("" if length is None else f"/{length}")
    got = _ours(text, strict)
    assert got == _reference(text, strict), text
    SEEN.add("refused" if got == "refused" else "host bits" if _ours(text, True) == "refused" else "network")
    SEEN.add("no length" if length is None else "/0" if length == 0 else "/32" if length == 32 else "length")


def test_prefix_cases_were_all_generated():
    """The property above met refusals (bad length, host bits in a network), networks, host
    addresses, and every kind of length."""
    test_prefixes_are_encoded_as_ipaddress_parses_them()
    assert SEEN >= {"refused", "host bits", "network", "no length", "/0", "/32", "length"}, SEEN


def test_text_that_is_not_an_address_is_refused():
    for text in ("10.0.0/8", "10.0.0.256/8", "010.0.0.1/32", "10.0.0.1/x", "::1/128", ""):
        assert _ours(text, True) == _reference(text, True) == "refused", text
