"""Help texts: every command describes itself; `usage` names each ledger variable once."""

from __future__ import annotations

import pytest

from orchestrator.cli import build_parser
from tests.cli.test_cli_bad_paths import leaf_commands

LEAVES = list(leaf_commands())


@pytest.mark.parametrize(("words", "parser"), LEAVES, ids=[" ".join(w) for w, _ in LEAVES])
def test_every_command_has_a_description(words, parser):
    assert parser.description, f"`orchestrator {' '.join(words)} --help` has no description"


def test_usage_help_names_the_ledger_settings_once_in_order():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    text = sub.choices["usage"].format_help().replace("\n", " ")
    text = " ".join(text.split())
    for var in ("$ORCHESTRATOR_DATABASE_URL", "$ORCHESTRATOR_LEDGER"):
        assert text.count(var) == 1, var
    assert text.index("$ORCHESTRATOR_DATABASE_URL") < text.index("$ORCHESTRATOR_LEDGER")
