"""Where the default catalog and policy are found: override, source tree, installed data."""

from __future__ import annotations

from pathlib import Path

from orchestrator import paths


def _tree(root: Path) -> Path:
    (root / "deployments").mkdir(parents=True)
    (root / "deployments" / "local.yaml").write_text("profiles: []\n", encoding="utf-8")
    return root


def test_source_tree_wins_when_it_has_the_files(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.HOME_ENV, raising=False)
    source = _tree(tmp_path / "src")
    _tree(tmp_path / "prefix" / "share" / "orchestrator")
    assert paths.defaults_root(source, tmp_path / "prefix") == source


def test_installed_data_files_serve_a_wheel_install(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.HOME_ENV, raising=False)
    installed = _tree(tmp_path / "prefix" / "share" / "orchestrator")
    site = tmp_path / "site-packages"  # a regular install: no deployments/ beside the package
    site.mkdir()
    assert paths.defaults_root(site, tmp_path / "prefix") == installed


def test_nothing_found_reports_the_source_tree_path(tmp_path, monkeypatch):
    monkeypatch.delenv(paths.HOME_ENV, raising=False)
    assert paths.defaults_root(tmp_path / "a", tmp_path / "b") == tmp_path / "a"


def test_env_override_wins(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path / "home"))
    source = _tree(tmp_path / "src")
    assert paths.defaults_root(source, tmp_path) == tmp_path / "home"


def test_this_checkout_resolves_to_its_own_files():
    assert paths.DEFAULT_DEPLOYMENTS.is_file()
    assert paths.DEFAULT_POLICY.is_file()
