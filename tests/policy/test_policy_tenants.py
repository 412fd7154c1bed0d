"""Tenant resolution from API keys, and key references resolved from env vars and files."""

from __future__ import annotations

import pytest
from policy_helpers import issues_of, load, marked_line

TWO_TENANTS = """
tenants:
  - name: acme
    api_keys:
      - env: ACME_KEY
      - file: keys/acme.txt
  - name: globex
    api_keys:
      - env: GLOBEX_KEY
"""


@pytest.fixture
def key_dir(tmp_path):
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "acme.txt").write_text("# rotated 2026-01\nacme-old\n\n  acme-new  \n")
    return tmp_path


ENV = {"ACME_KEY": "acme-env-key", "GLOBEX_KEY": "globex-key"}


def test_no_keys_means_everyone_is_the_default_tenant(tmp_path, gpu_catalog):
    policy = load(tmp_path, "", gpu_catalog)
    assert not policy.defines_keys
    for key in (None, "", "anything", "Bearer x"):
        assert policy.resolve_tenant(key) is policy.default_tenant
    assert policy.default_tenant.name == "default"


def test_known_keys_map_to_their_tenant(key_dir, gpu_catalog):
    policy = load(key_dir, TWO_TENANTS, gpu_catalog, env=ENV)
    assert policy.defines_keys
    assert policy.resolve_tenant("acme-env-key").name == "acme"
    assert policy.resolve_tenant("acme-old").name == "acme"  # a file may hold several keys
    assert policy.resolve_tenant("acme-new").name == "acme"  # surrounding blanks stripped
    assert policy.resolve_tenant("globex-key").name == "globex"
    assert policy.resolve_tenant("# rotated 2026-01") is None  # comments are not keys


@pytest.mark.parametrize("key", [None, "", "unknown", "acme-env-key "])
def test_unknown_or_missing_key_is_rejected(key_dir, gpu_catalog, key):
    policy = load(key_dir, TWO_TENANTS, gpu_catalog, env=ENV)
    assert policy.resolve_tenant(key) is None


def test_unknown_keys_may_fall_back_to_the_default_tenant(key_dir, gpu_catalog):
    body = TWO_TENANTS + "unknown_keys: default_tenant\n"
    policy = load(key_dir, body, gpu_catalog, env=ENV)
    assert policy.resolve_tenant("unknown") is policy.default_tenant
    assert policy.resolve_tenant(None) is policy.default_tenant
    assert policy.resolve_tenant("globex-key").name == "globex"
    assert [t.name for t in policy.reachable_tenants()] == ["default", "acme", "globex"]


def test_keys_are_kept_only_as_digests(key_dir, gpu_catalog):
    policy = load(key_dir, TWO_TENANTS, gpu_catalog, env=ENV)
    assert "acme-env-key" not in repr(policy)
    assert policy.resolve_tenant("acme-env-key").name == "acme"  # found by its digest
    assert policy.key_files == (str(key_dir / "keys" / "acme.txt"),)


def test_missing_env_var_names_the_field(key_dir, gpu_catalog):
    issues, text = issues_of(key_dir, TWO_TENANTS, gpu_catalog, env={"ACME_KEY": "a"})
    [issue] = issues
    assert issue.field == "tenants[1].api_keys[0].env"
    assert issue.line == marked_line(text, "env: GLOBEX_KEY")
    assert issue.reason == "environment variable GLOBEX_KEY is not set"


def test_empty_env_var(key_dir, gpu_catalog):
    issues, _ = issues_of(key_dir, TWO_TENANTS, gpu_catalog, env={**ENV, "GLOBEX_KEY": "  "})
    assert [i.reason for i in issues] == ["environment variable GLOBEX_KEY is empty"]


def test_missing_and_empty_key_files(tmp_path, gpu_catalog):
    (tmp_path / "empty.txt").write_text("# no keys yet\n\n")
    body = """
    tenants:
      - name: a
        api_keys:
          - file: nowhere.txt
      - name: b
        api_keys:
          - file: empty.txt  # <-
    """
    issues, text = issues_of(tmp_path, body, gpu_catalog)
    assert [i.field for i in issues] == [
        "tenants[0].api_keys[0].file",
        "tenants[1].api_keys[0].file",
    ]
    assert "cannot read key file" in issues[0].reason and "nowhere.txt" in issues[0].reason
    assert "holds no key" in issues[1].reason
    assert issues[1].line == marked_line(text)


def test_key_shared_by_two_tenants(key_dir, gpu_catalog):
    issues, _ = issues_of(key_dir, TWO_TENANTS, gpu_catalog, env={**ENV, "GLOBEX_KEY": "acme-old"})
    [issue] = issues
    assert issue.field == "tenants[1].api_keys[0].env"
    assert "also a key of tenant 'acme'" in issue.reason
    assert "acme-old" not in issue.reason  # never print a secret


def test_structure_only_load_does_not_need_secrets(tmp_path, gpu_catalog):
    policy = load(tmp_path, TWO_TENANTS, gpu_catalog, resolve_secrets=False, env={})
    assert set(policy.tenants) == {"default", "acme", "globex"}
    with pytest.raises(RuntimeError, match="without resolving API keys"):
        policy.resolve_tenant("acme-env-key")


def test_absolute_key_file_path(tmp_path, gpu_catalog):
    key = tmp_path / "abs.key"
    key.write_text("abs-key\n")
    body = f"tenants:\n  - name: a\n    api_keys: [{{file: {key}}}]\n"
    sub = tmp_path / "sub"
    sub.mkdir()
    policy = load(sub, body, gpu_catalog)
    assert policy.resolve_tenant("abs-key").name == "a"
