"""The az commands of one logged-in session, run one after another in one process (tests only).

Run by the az installation's own Python (``python az_worker.py``), it reads one JSON array of az
arguments a line and answers each with one JSON line ``{"code", "stdout", "stderr"}``. Each command
is what the ``az`` entry point runs (``azure.cli.__main__``: ``get_default_cli().invoke(args)``, a
new CLI each time, so profile and config are read anew), without paying az's start-up, the import
of its command modules, per command: that start-up was most of the az tests' time.
"""

import io
import json
import os
import sys


def _exit_code(exc: SystemExit) -> int:
    # as the interpreter turns sys.exit's argument into the process's status
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


def main() -> None:
    requests = os.fdopen(os.dup(0), "r")
    answers = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # a command that prompts finds no terminal, as under subprocess.run(capture_output)
    os.dup2(devnull, 1)  # nothing written to fd 1 may corrupt the answers
    sys.stdin = open(os.devnull)
    out, err = io.StringIO(), io.StringIO()
    # knack binds its log handlers to sys.stderr once, at the first command: keep the same buffer
    sys.stdout, sys.stderr = out, err
    from azure.cli.core import get_default_cli

    for line in requests:
        for buf in (out, err):
            buf.seek(0)
            buf.truncate()
        try:
            code = get_default_cli().invoke(json.loads(line), out_file=out)
        except SystemExit as exc:
            code = _exit_code(exc)
        answers.write(json.dumps({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
