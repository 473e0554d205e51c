"""Backends realize what the engine decided: ``sim`` answers from the engine alone;
``netns`` builds the lab in Linux network namespaces (see :mod:`vnetlab.backends.netns`)."""

from __future__ import annotations


def backend_for(lab):
    if lab.backend_name == "netns":
        from . import netns_backend
        return netns_backend
    from . import sim
    return sim
