"""Every `orchestrator` command, fed unusable paths, answers with a short error and a
non-zero exit code, never a traceback. The commands and their file options are read from
the CLI parser, so a new command or option is covered without editing this test."""

from __future__ import annotations

import argparse
import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli import build_parser, main

# options and positionals that name a file, a folder or a ledger
PATH_DESTS = {
    "deployments", "policy", "ledger", "paths", "file", "old", "new", "output", "out",
    "heldout_out", "data", "shared", "artifact", "input", "values", "trace", "report",
    "demand", "predictor_artifact",
}  # fmt: skip
OUTPUT_DESTS = {"output", "out", "heldout_out", "report"}
# inputs that may legitimately be absent or empty (a ledger before the first request:
# `usage` reports "no requests recorded"); only "no traceback" is asserted for them
MAY_BE_ABSENT = {"ledger"}
# every file option of a command gets the same kind of bad path at once, so a command that
# would start a cluster or an engine fails on its first input before doing anything
KINDS = ("missing_dir", "directory", "empty", "malformed")


def leaf_commands() -> Iterator[tuple[list[str], argparse.ArgumentParser]]:
    def walk(parser: argparse.ArgumentParser, words: list[str]):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            yield words, parser
            return
        for name, sub in subs[0].choices.items():
            yield from walk(sub, [*words, name])

    yield from walk(build_parser(), [])


def bad_path(tmp: Path, kind: str, dest: str) -> str:
    if kind == "missing_dir":
        return str(tmp / "no-such-dir" / f"{dest}.yaml")
    if kind == "directory":
        d = tmp / f"dir-{dest}"
        d.mkdir(exist_ok=True)
        return str(d)
    f = tmp / f"{kind}-{dest}.yaml"
    f.write_text("" if kind == "empty" else "{a: [1, 2\n\x00 :: not yaml, not json {\n")
    return str(f)


def argv_for(words: list[str], parser: argparse.ArgumentParser, tmp: Path, kind: str):
    argv = list(words)
    paths = inputs = 0
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.nargs == 0:
            continue
        if action.dest in PATH_DESTS:
            value = bad_path(tmp, kind, action.dest)
            paths += 1
            inputs += action.dest not in OUTPUT_DESTS | MAY_BE_ABSENT
        elif action.required or not action.option_strings:
            value = "x"
        else:
            continue
        argv += [action.option_strings[0], value] if action.option_strings else [value]
    return argv, paths, inputs


def takes_a_path(parser: argparse.ArgumentParser) -> bool:
    return any(a.dest in PATH_DESTS for a in parser._actions)


CASES = [
    pytest.param(words, kind, id=f"{' '.join(words)}-{kind}")
    for words, parser in leaf_commands()
    if takes_a_path(parser)
    for kind in KINDS
]


def test_most_commands_take_a_path():
    """Guards the filter above: a broken PATH_DESTS would silently empty the walk."""
    leaves = list(leaf_commands())
    assert sum(takes_a_path(p) for _, p in leaves) >= len(leaves) - 3


@pytest.mark.parametrize(("words", "kind"), CASES)
def test_no_traceback_on_bad_paths(words, kind, tmp_path, monkeypatch):
    parser = dict((tuple(w), p) for w, p in leaf_commands())[tuple(words)]
    argv, paths, inputs = argv_for(words, parser, tmp_path, kind)
    dests = {a.dest for a in parser._actions}
    assert paths, f"`{' '.join(words)}` takes no file"
    monkeypatch.delenv("ORCHESTRATOR_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse refusing a value is fine (exit 2, one line)
            code = exc.code
    text = err.getvalue() + out.getvalue()
    assert "Traceback" not in text
    outputs = len(OUTPUT_DESTS & dests)
    if inputs or outputs and kind in ("missing_dir", "directory"):
        assert code not in (0, None), f"{argv} succeeded:\n{text}"
        assert text.strip(), f"{argv} failed without saying why"
    elif outputs:  # an existing output file is overwritten
        assert code == 0, text


def test_schema_into_a_missing_directory_is_one_line(tmp_path, capsys):
    assert main(["policy", "schema", "-o", str(tmp_path / "missing" / "x.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err


def test_render_into_a_missing_directory_is_one_line(tmp_path, capsys):
    assert main(["render", "-o", str(tmp_path / "missing" / "x.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "does not exist" in err


def test_simulate_refuses_an_existing_report_file_before_running(tmp_path, capsys):
    existing = tmp_path / "report"
    existing.write_text("not a folder")
    code = main(["simulate", "--trace", str(tmp_path / "none.jsonl"), "--report", str(existing)])
    err = capsys.readouterr().err
    assert code == 2 and "--report" in err and "Traceback" not in err


def test_simulate_negative_duration_names_duration(tmp_path, capsys):
    code = main(["simulate", "--trace", str(tmp_path / "t.jsonl"), "--duration", "-5"])
    err = capsys.readouterr().err
    assert code == 2 and "--duration" in err and "--warmup" not in err


def test_profile_measure_refuses_an_unwritable_out_before_measuring(tmp_path, capsys):
    from orchestrator.paths import DEFAULT_DEPLOYMENTS

    args = ["profile", "measure", "--deployments", str(DEFAULT_DEPLOYMENTS)]
    code = main([*args, "--profile", "smollm2-cpu", "--out", str(tmp_path / "no" / "x.yaml")])
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and "measuring" not in err


def test_predictor_train_refuses_a_file_as_artifact_folder_before_training(tmp_path, capsys):
    from orchestrator.paths import SHARED_DATA
    from orchestrator.predict.offline.data import data_available

    if not data_available(SHARED_DATA):
        pytest.skip(f"shared data not found under {SHARED_DATA}")
    existing = tmp_path / "artifact"
    existing.write_text("a file")
    code = main(["predictor", "train", "--no-loso", "--out", str(existing)])
    err = capsys.readouterr().err
    assert code == 2 and "--out" in err and "not a directory" in err
