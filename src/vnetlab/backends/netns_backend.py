"""Placeholder until the netns backend lands: says what is missing."""

from ..model import AzureError


def check() -> None:
    raise AzureError("The netns backend is not available in this build yet.", "EmulationUnavailable")


def apply(lab, topology) -> None:
    check()


def teardown(lab) -> None:
    return None
