"""Progress bars: on a terminal for people; nothing for -o json or when stdout is not a terminal."""

import io

from conftest import build, cli, up_note
from vnetlab.cli.progress import Bar, wanted
from vnetlab.cli.render import Output
from vnetlab.engine.matrix import matrix
from vnetlab.engine.network import LabView
from vnetlab.lab import Lab

PROGRESS_TEXT = ("Reading ", "Checking it against", "Saving it", "Building it", "Compiling the lab",
                 "Tracing class pairs")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_only_for_table_output_on_a_terminal():
    assert wanted(Output.table, Terminal())
    assert not wanted(Output.json, Terminal())
    assert not wanted(Output.table, io.StringIO())   # a pipe or a file
    assert not wanted(Output.table, object())        # no isatty at all


def test_cli_runner_output_has_no_progress_text(tmp_path):
    home = up_note(tmp_path)
    (tmp_path / "again.yaml").write_text((tmp_path / "lab.yaml").read_text())
    outputs = [cli(home, "up", str(tmp_path / "again.yaml")), cli(home, "up", str(tmp_path / "again.yaml"),
                                                                   "-o", "json"),
               cli(home, "matrix"), cli(home, "matrix", "-o", "json")]
    for result in outputs:
        assert result.exit_code == 0, result.output
        assert not any(text in result.output for text in PROGRESS_TEXT), result.output


def test_up_tells_its_stages_in_order(tmp_path):
    lab = Lab.open(tmp_path / "lab")
    stages = []
    lab.up(build(), stage=stages.append)
    assert stages == ["checking", "saving", "building"]


def test_matrix_tells_progress_per_source_class_up_to_the_total():
    told = []
    result = matrix(LabView(build()), ["80"], progress=lambda done, total: told.append((done, total)))
    classes = len(result["classes"])
    assert told == [(i, classes) for i in range(1, classes + 1)]


def test_a_disabled_bar_prints_nothing(capsys):
    with Bar(False, "Tracing class pairs", 3) as bar:
        bar.stage("one")
        bar.advance()
        bar.update(2, 3, "two")
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
