"""The ``fsmflow`` command line: ``fsmflow diagram MODULE:ATTR`` and the subcommand plumbing."""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from examples.turnstile import turnstile_spec
from fsmflow import cli
from fsmflow.diagrams import to_dot, to_mermaid

# CI installs Graphviz (.ci/run), so there a missing dot fails these tests.
needs_dot = pytest.mark.skipif(
    shutil.which("dot") is None and os.environ.get("CI") != "true",
    reason="Graphviz's dot is not installed",
)

# Imported by the CLI from the current directory, as a user's module would be.
TARGETS = """
import enum

from fsmflow import FsmBuilder, goto


class Light(enum.Enum):
    OFF = 1
    ON = 2


class Flip(enum.Enum):
    FLIP = 1


def flip(state, event, ctx):
    return goto(Light.ON if state is Light.OFF else Light.OFF)


def light_spec():
    builder = FsmBuilder(states=Light, events=Flip, initial=Light.OFF, name="light")
    builder.when(Light.OFF).on(Flip.FLIP, flip, to=[Light.ON])
    builder.when(Light.ON).on(Flip.FLIP, flip, to=[Light.OFF])
    return builder.build()


def broken_spec():
    return FsmBuilder(states=Light, events=Flip, initial=Flip.FLIP, name="broken").build()


def needs_args(name):
    return light_spec()


def not_a_spec():
    return "light"


SPEC = light_spec()
MACHINE = SPEC.new_machine(Light.ON)
NUMBER = 42


class Holder:
    spec = SPEC


class ClassmethodSupervisor:
    @classmethod
    def fsm_spec(cls):
        return SPEC


class StaticmethodSupervisor:
    @staticmethod
    def fsm_spec():
        return SPEC


class SpecAttribute:
    fsm_spec = SPEC


class InstanceMethodSpec:
    def fsm_spec(self):
        return SPEC


class NumberSpec:
    fsm_spec = 3


class NoSpec:
    pass


class Supervisor:
    # Stands for a supervisor instance: fsm_spec through its class.

    @classmethod
    def fsm_spec(cls):
        return SPEC


SUPERVISOR = Supervisor()


class Drawable:
    # Stands for a graph or a tree: anything with a flowchart() method.

    def flowchart(self):
        from fsmflow.diagrams import Flowchart, FlowEdge, FlowNode

        return Flowchart(
            (FlowNode.of("a", "step a"), FlowNode.of("b", "step b", "retries: 2")),
            (FlowEdge("a", "b", "ok"),),
            title="drawable",
        )


GRAPH = Drawable()


def build_graph():
    return Drawable()


CHART = Drawable().flowchart()


class RunningTree(Drawable):
    # Both a flowchart and an fsm_spec, like a running tree: the flowchart wins.

    fsm_spec = SPEC


TREE = RunningTree()
"""

LIGHT_MERMAID_ACTIVE = "  class ON current"


@pytest.fixture
def targets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``cli_targets`` in a fresh current directory that is not on ``sys.path`` yet."""
    (tmp_path / "cli_targets.py").write_text(TARGETS, encoding="utf-8")
    (tmp_path / "cli_broken_import.py").write_text(
        "import cli_missing_dependency_xyz\n", encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield tmp_path
    for name in ("cli_targets", "cli_broken_import"):
        sys.modules.pop(name, None)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


# -- output -------------------------------------------------------------------------------


def test_mermaid_to_stdout_by_default(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "diagram", "examples.turnstile:turnstile_spec")
    assert (status, err) == (0, "")
    assert out == to_mermaid(turnstile_spec())


def test_dot_format(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "diagram", "examples.turnstile:turnstile_spec", "--format", "dot")
    assert status == 0
    assert out == to_dot(turnstile_spec())


def test_output_file_and_title(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "turnstile.mmd"
    status, out, _ = run(
        capsys,
        "diagram",
        "examples.turnstile:turnstile_spec",
        "-o",
        str(target),
        "--title",
        "Turnstile",
    )
    assert (status, out) == (0, "")
    assert target.read_text(encoding="utf-8") == to_mermaid(turnstile_spec(), title="Turnstile")


def test_unwritable_output_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "missing-dir" / "out.mmd"
    status, _, err = run(capsys, "diagram", "examples.turnstile:turnstile_spec", "-o", str(target))
    assert status == 1
    assert f"fsmflow diagram: error: cannot write {target}" in err


def test_svg_without_dot(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    status, out, err = run(capsys, "diagram", "examples.turnstile:turnstile_spec", "-f", "svg")
    assert (status, out) == (1, "")
    assert "Graphviz's 'dot' executable" in err
    assert "'mermaid' or 'dot'" in err


@needs_dot
def test_svg_with_dot(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "diagram", "examples.turnstile:turnstile_spec", "-f", "svg")
    assert status == 0
    assert out.startswith("<?xml")
    assert out.rstrip().endswith("</svg>")


# -- what MODULE:ATTR may name --------------------------------------------------------------


@pytest.mark.parametrize(
    "attr",
    [
        "SPEC",
        "light_spec",
        "Holder.spec",
        "ClassmethodSupervisor",
        "StaticmethodSupervisor",
        "SpecAttribute",
    ],
)
def test_targets_that_name_a_spec(
    capsys: pytest.CaptureFixture[str], targets: Path, attr: str
) -> None:
    status, out, err = run(capsys, "diagram", f"cli_targets:{attr}")
    assert (status, err) == (0, "")
    assert out.startswith('---\ntitle: "light"\n---\nstateDiagram-v2\n')
    assert "  OFF --> ON: FLIP\n" in out
    assert LIGHT_MERMAID_ACTIVE not in out


@pytest.mark.parametrize("attr", ["GRAPH", "build_graph", "CHART", "TREE"])
@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_targets_that_draw_a_flowchart(
    capsys: pytest.CaptureFixture[str], targets: Path, attr: str, fmt: str
) -> None:
    status, out, err = run(capsys, "diagram", f"cli_targets:{attr}", "-f", fmt)
    assert (status, err) == (0, "")
    if fmt == "mermaid":
        assert out.startswith('---\ntitle: "drawable"\n---\nflowchart TD\n')
        assert 'b["step b<br/>retries: 2"]' in out
        assert 'a -->|"ok"| b' in out
    else:
        assert out.startswith('digraph "drawable" {')
        assert 'label="step b\\nretries: 2"' in out


def test_a_supervisor_instance_draws_its_machine(
    capsys: pytest.CaptureFixture[str], targets: Path
) -> None:
    status, out, _ = run(capsys, "diagram", "cli_targets:SUPERVISOR")
    assert status == 0
    assert "  OFF --> ON: FLIP\n" in out


def test_real_engines_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    # A supervisor class, the tree class (its own FSM), the DAG executor's FSM, a DAG.
    for reference, expected in [
        ("examples.connection_manager:ConnectionManager", 'title: "connection manager"'),
        ("fsmflow.supervisor:SupervisionTree", "Restarting --> Running: RestartDue"),
        ("fsmflow.dag:DagExecution", "stateDiagram-v2"),
        ("examples.document_pipeline:build_pipeline", "parse --> word_stats"),
    ]:
        assert cli.main(["diagram", reference]) == 0, reference
        assert expected in capsys.readouterr().out, reference


def test_a_machine_target_highlights_its_state(
    capsys: pytest.CaptureFixture[str], targets: Path
) -> None:
    status, out, _ = run(capsys, "diagram", "cli_targets:MACHINE")
    assert status == 0
    assert LIGHT_MERMAID_ACTIVE in out


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("cli_targets", "'cli_targets' is not a MODULE:ATTR reference"),
        ("cli_targets:", "is not a MODULE:ATTR reference"),
        (":SPEC", "is not a MODULE:ATTR reference"),
        ("cli targets:SPEC", "is not a MODULE:ATTR reference"),
        (".cli_targets:SPEC", "is not a MODULE:ATTR reference"),
        ("cli_targets:SPEC:x", "is not a MODULE:ATTR reference"),
        ("cli_nowhere_xyz:SPEC", "module 'cli_nowhere_xyz' not found"),
        ("cli_targets.sub:SPEC", "module 'cli_targets.sub' not found"),
        ("cli_targets:MISSING", "module 'cli_targets' has no attribute 'MISSING'"),
        ("cli_targets:Holder.missing", "has no attribute 'Holder.missing'"),
        (
            "cli_targets:NUMBER",
            "cli_targets:NUMBER is of type int; expected an FsmSpec, a StateMachine",
        ),
        ("cli_targets:NoSpec", "is the class NoSpec, which has no fsm_spec attribute"),
        ("cli_targets:NumberSpec", "cli_targets:NumberSpec.fsm_spec is of type int"),
        (
            "cli_targets:InstanceMethodSpec",
            "cli_targets:InstanceMethodSpec.fsm_spec must be callable without arguments, "
            "but its signature is (self)",
        ),
        ("cli_targets:needs_args", "must be callable without arguments"),
        (
            "cli_targets:not_a_spec",
            "cli_targets:not_a_spec() returned an object of type str, not an FsmSpec",
        ),
        ("time:time", "time:time() returned an object of type float"),
    ],
)
def test_bad_targets_are_usage_errors(
    capsys: pytest.CaptureFixture[str], targets: Path, reference: str, message: str
) -> None:
    status, out, err = run(capsys, "diagram", reference)
    assert (status, out) == (2, "")
    assert err.startswith("usage: fsmflow diagram ")
    assert "\nfsmflow diagram: error: " in err
    assert message in err


def test_a_spec_that_fails_to_build(capsys: pytest.CaptureFixture[str], targets: Path) -> None:
    status, _, err = run(capsys, "diagram", "cli_targets:broken_spec")
    assert status == 1
    assert "fsmflow diagram: error: cli_targets:broken_spec did not build: " in err
    assert "initial variant FLIP is not a variant" in err


def test_errors_inside_the_module_propagate(targets: Path) -> None:
    with pytest.raises(ModuleNotFoundError, match="cli_missing_dependency_xyz"):
        cli.main(["diagram", "cli_broken_import:SPEC"])


def test_current_directory_is_importable(targets: Path) -> None:
    assert str(targets) not in sys.path
    assert cli.main(["diagram", "cli_targets:SPEC", "-o", "out.mmd"]) == 0
    assert sys.path[0] == str(targets)
    assert (targets / "out.mmd").read_text(encoding="utf-8").startswith("---\n")


# -- the command plumbing ------------------------------------------------------------------


def test_a_command_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys)
    assert status == 2
    assert "required: COMMAND" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.metadata

    import fsmflow

    status, out, _ = run(capsys, "--version")
    assert status == 0
    assert out == f"fsmflow {fsmflow.__version__}\n"
    # The package's own version is the one it was installed as.
    assert fsmflow.__version__ == importlib.metadata.version("fsmflow")


def test_help_lists_the_diagram_command(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert "diagram" in out


def test_unknown_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "diagram", "examples.turnstile:turnstile_spec", "-f", "png")
    assert status == 2
    assert "invalid choice: 'png'" in err


def _register_probe(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """A command added the way later modules add theirs; it exits like handlers may."""
    parser = commands.add_parser("probe")
    parser.add_argument("exit_with", choices=["none", "message", "three"])
    parser.set_defaults(handler=_probe)


def _probe(args: argparse.Namespace) -> int:
    codes: dict[str, int | str | None] = {"none": None, "message": "probe failed", "three": 3}
    raise SystemExit(codes[args.exit_with])


def test_more_commands_plug_in(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, _register_probe))
    assert run(capsys, "probe", "none")[0] == 0
    assert run(capsys, "probe", "three")[0] == 3
    status, _, err = run(capsys, "probe", "message")
    assert (status, err) == (1, "probe failed\n")


def test_python_dash_m_fsmflow(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["fsmflow", "diagram", "examples.turnstile:turnstile_spec"])
    with pytest.raises(SystemExit) as caught:
        runpy.run_module("fsmflow", run_name="__main__")
    assert caught.value.code == 0
    assert capsys.readouterr().out == to_mermaid(turnstile_spec())
