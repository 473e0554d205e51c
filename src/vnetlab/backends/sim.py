"""The simulation backend: nothing to build; every answer comes from :mod:`vnetlab.engine.trace`."""


def apply(lab, topology) -> None:
    return None


def teardown(lab) -> None:
    return None
