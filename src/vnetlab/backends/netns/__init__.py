"""netns emulation backend: realize a desired kernel state with network namespaces.

Layers (Azure-agnostic; the engine compiles Azure semantics into a ``DesiredState``):

- ``state``: frozen descriptions of namespaces, bridges, veth pairs, addresses, routes,
  policy rules, permanent neighbours, nft tables and processes;
- ``kernel``: safe wrappers for ``ip -batch``, ``nft -f``, in-process ``setns`` sysctls, /etc/netns;
- ``apply``: reconcile (write-ahead records in the store), ``teardown``/``clean``;
- ``exec``: run commands, tcpdump, probes returning Connected/Refused/TimedOut/Unreachable;
- ``responder``: the stdlib HTTP/UDP service run in emulated VMs and web apps, and the
  launcher that starts all of them with one interpreter (fork per service after ``setns``);
- ``services``: the platform services the responder also runs (stdlib): a DNS server answering
  from a table (or really forwarding), and PaaS endpoints (storage and key vault over HTTPS,
  SQL over TDS) admitting each source as their table says, listening in several namespaces.

Everything lives in namespaces named ``vl*``; nothing is added to the host namespace.
"""

from .apply import ApplyReport, NamespaceConflict, TeardownError, apply, clean, load_applied, teardown
from .processes import process_pid
from .kernel import EmulationUnavailable, KernelError, check_prerequisites
from .state import (Address, Bridge, DesiredState, Namespace, Neighbour, NftTable, Process,
                    Route, Rule, VethPair, mac_for, ttl_decrement_body, ttl_preserve_body)

__all__ = [
    "Address", "ApplyReport", "Bridge", "DesiredState", "EmulationUnavailable", "KernelError",
    "Namespace", "NamespaceConflict", "Neighbour", "NftTable", "Process", "Route", "Rule", "TeardownError",
    "VethPair", "apply", "check_prerequisites", "clean", "load_applied", "mac_for",
    "process_pid", "teardown", "ttl_decrement_body", "ttl_preserve_body",
]
