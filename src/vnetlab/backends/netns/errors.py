"""The emulation's failures, all :class:`vnetlab.model.BackendError`: the CLI prints them and
exits 2 (``ServiceNotStarted``: 1, the change was made), the API answers 500. Never a traceback."""

from __future__ import annotations

from ...model.errors import BackendError, EmulationUnavailable as _Unavailable


class EmulationUnavailable(_Unavailable):
    """The emulation cannot run here; the message names every missing prerequisite."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("The netns emulation is not available here: " + "; ".join(problems) + ".")


class KernelError(BackendError):
    """A kernel tool failed; carries the command, its input and stderr."""

    code = "KernelError"

    def __init__(self, cmd: list[str], rc: int, stderr: str, script: str | None = None):
        self.cmd, self.rc, self.stderr, self.script = cmd, rc, stderr, script
        msg = f"{' '.join(cmd)} exited {rc}: {stderr.strip()}"
        if script:
            lines = script.splitlines()
            msg += "\n--- input (first 40 lines) ---\n" + "\n".join(lines[:40])
        super().__init__(msg)


class NamespaceConflict(BackendError):
    """A namespace to create or to run in exists and is not this lab's."""

    code = "NamespaceConflict"
    status = 409


class TeardownError(BackendError):
    """Something recorded could not be removed; the records are kept."""

    code = "TeardownError"


class ProbeError(BackendError):
    """A probe or a capture could not run in its namespace."""

    code = "ProbeError"


class ServiceNotStarted(BackendError):
    """The lab is up, but services did not start. The CLI exits 1 (not 2: the change was made)."""

    code = "ServiceNotStarted"
    exit_code = 1

    def __init__(self, failed: list):
        self.failed = failed
        lines = [f"{s.resource or s.key} ({s.key}): {s.reason}" + (f"; command: {s.command}" if s.command else "")
                 + f"; log: {s.log}" for s in failed]
        super().__init__("The lab is up, but these services did not start: " + "; ".join(lines) + ".")
