"""Request bounds, shedding priority and failover rules: inherited defaults -> tenant."""

from __future__ import annotations

import pytest

from orchestrator.config_files import ConfigError
from orchestrator.policy.schema_tenants import BUILTIN_BOUNDS
from tests.policy.policy_helpers import load


def test_builtin_bounds_apply_when_the_policy_sets_none(tmp_path, local_catalog):
    policy = load(tmp_path, "default_tenant: {name: default}\n", local_catalog)
    tenant = policy.default_tenant
    assert tenant.bounds == BUILTIN_BOUNDS
    assert tenant.priority == 0
    assert tenant.failover.retry is True and tenant.failover.migrate_streams is True


def test_tenant_bounds_merge_field_by_field_over_defaults(tmp_path, local_catalog, monkeypatch):
    monkeypatch.setenv("GOLD_KEY", "sk-gold")
    body = """
    defaults:
      requests: {max_n: 4, max_concurrent_requests: 10}
      failover: {migrate_streams: false}
    tenants:
      - name: gold
        api_keys: [{env: GOLD_KEY}]
        priority: 10
        requests: {max_n: 2, max_prompt_tokens: 1000}
        failover: {retry: false}
    """
    policy = load(tmp_path, body, local_catalog)
    gold = policy.tenant("gold")
    assert gold.bounds.max_n == 2
    assert gold.bounds.max_prompt_tokens == 1000
    assert gold.bounds.max_concurrent_requests == 10  # from defaults
    assert gold.bounds.max_best_of == BUILTIN_BOUNDS.max_best_of  # built-in
    assert gold.priority == 10
    assert (gold.failover.retry, gold.failover.migrate_streams) == (False, False)


@pytest.mark.parametrize(
    "body",
    [
        "default_tenant: {requests: {max_n: 0}}\n",
        "default_tenant: {requests: {max_tokens: 5}}\n",
        "default_tenant: {priority: -1}\n",
        "defaults: {classes: {standard: {requests: {max_n: 2}}}}\n",
    ],
)
def test_invalid_bounds_are_refused(tmp_path, local_catalog, body):
    with pytest.raises(ConfigError):
        load(tmp_path, body, local_catalog)
