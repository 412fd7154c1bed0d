"""`orchestrator serve` joins a running cluster with --address / $RAY_ADDRESS."""

from __future__ import annotations

import argparse

import pytest

from orchestrator.cli.serve import parse_labels, ray_address, register


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


def test_address_flag_wins_over_env_and_no_address_starts_a_local_cluster(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert ray_address(_args([])) is None
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert ray_address(_args([])) == "10.0.0.1:6379"
    assert ray_address(_args(["--address", "head:6380"])) == "head:6380"


def test_ingress_labels_and_proxy_location():
    args = _args(
        ["--ingress-node-label", "orchestrator.io/node-type=cpu-a", "--ingress-node-label", "z=1"]
    )
    assert parse_labels(args.ingress_node_label) == {"orchestrator.io/node-type": "cpu-a", "z": "1"}
    assert args.proxy_location == "HeadOnly"
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_labels(["novalue"])
