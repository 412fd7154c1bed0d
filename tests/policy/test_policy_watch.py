"""PolicyWatcher: valid changes swap in atomically; broken files keep the last good policy."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from pathlib import Path

import pytest
from policy_helpers import policy_text

from orchestrator.config_files import ConfigError
from orchestrator.policy import PolicyWatcher, default_policy

V1 = policy_text("defaults:\n  cost_cap_usd: 0.01\n")
V2 = policy_text("defaults:\n  cost_cap_usd: 0.02\n")
BROKEN_SCHEMA = policy_text("defaults:\n  cost_cap_usd: -5\n")
BROKEN_YAML = policy_text("defaults:\n  cost_cap_usd: [0.03\n")
BROKEN_CROSS = policy_text("defaults:\n  allowed_profiles: [ghost]\n")


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def cap(watcher: PolicyWatcher) -> float | None:
    return watcher.current.default_tenant.limits().cost_cap_usd


@pytest.fixture
def policy_file(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(V1)
    return path


def test_initial_load_and_status(policy_file, gpu_catalog):
    w = PolicyWatcher(policy_file, gpu_catalog)
    assert cap(w) == 0.01
    st = w.status()
    assert st.version == w.current.version
    assert st.loaded_at is not None and st.checked_at is not None
    assert st.last_error is None and st.last_error_at is None and st.reloads == 0
    assert st.resolved_path == str(policy_file.resolve())
    assert w.check() is False  # nothing changed


def test_valid_change_is_seen_by_the_next_check(policy_file, gpu_catalog):
    w = PolicyWatcher(policy_file, gpu_catalog)
    old_version = w.current.version
    atomic_write(policy_file, V2)
    assert w.check() is True
    assert cap(w) == 0.02
    assert w.current.version != old_version
    assert w.status().reloads == 1


@pytest.mark.parametrize(
    ("broken", "expected"),
    [
        (BROKEN_SCHEMA, ":4: defaults.cost_cap_usd: Input should be greater than 0"),
        (BROKEN_YAML, ": <yaml>: invalid YAML"),
        (BROKEN_CROSS, ":4: defaults.allowed_profiles[0]: unknown profile 'ghost'"),
    ],
    ids=["schema", "yaml", "cross-check"],
)
def test_broken_file_keeps_last_good_policy_and_reports(
    policy_file, gpu_catalog, caplog, broken, expected
):
    w = PolicyWatcher(policy_file, gpu_catalog)
    good = w.current
    with caplog.at_level(logging.ERROR, logger="orchestrator.policy"):
        atomic_write(policy_file, broken)
        assert w.check() is False
    assert w.current is good
    st = w.status()
    assert st.version == good.version
    assert st.last_error and any(
        e.startswith(str(policy_file)) and expected in e for e in st.last_error
    )
    assert st.last_error_at is not None and st.rejected_version is not None
    assert f"keeping version {good.version}" in caplog.text
    assert expected in caplog.text
    # the same broken content is not re-logged on every poll
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="orchestrator.policy"):
        assert w.check() is False
    assert caplog.text == ""
    # fixing the file loads it and clears the error
    atomic_write(policy_file, V2)
    assert w.check() is True
    assert cap(w) == 0.02
    assert w.status().last_error is None and w.status().rejected_version is None


def test_content_change_with_same_size_and_mtime_is_detected(policy_file, gpu_catalog):
    w = PolicyWatcher(policy_file, gpu_catalog)
    st = policy_file.stat()
    same_size = V1.replace("0.01", "0.03")
    assert len(same_size) == len(V1)
    policy_file.write_text(same_size)
    os.utime(policy_file, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert w.check() is True
    assert cap(w) == 0.03


def test_touch_without_change_does_not_reload(policy_file, gpu_catalog):
    w = PolicyWatcher(policy_file, gpu_catalog)
    os.utime(policy_file, (time.time() + 10, time.time() + 10))
    assert w.check() is False
    assert w.status().reloads == 0


def test_deleted_file_keeps_policy(policy_file, gpu_catalog):
    w = PolicyWatcher(policy_file, gpu_catalog)
    policy_file.unlink()
    assert w.check() is False
    assert cap(w) == 0.01
    assert "<file>: cannot read" in w.status().last_error[0]
    policy_file.write_text(V2)
    assert w.check() is True


def _configmap_publish(root: Path, text: str, stamp: str) -> Path:
    """Mimic kubelet's atomic writer: a timestamped dir, `..data` swapped by rename,
    and the visible file a symlink through `..data`."""
    target = root / f"..{stamp}"
    target.mkdir()
    (target / "policy.yaml").write_text(text)
    tmp_link = root / "..data_tmp"
    os.symlink(target.name, tmp_link)
    old = os.readlink(root / "..data") if (root / "..data").is_symlink() else None
    os.replace(tmp_link, root / "..data")
    if not (root / "policy.yaml").is_symlink():
        os.symlink("..data/policy.yaml", root / "policy.yaml")
    if old:
        shutil.rmtree(root / old)
    return target


def test_configmap_symlink_swap(tmp_path, gpu_catalog):
    root = tmp_path / "config"
    root.mkdir()
    first = _configmap_publish(root, V1, "2026_01_01_00_00_00.000000001")
    mtime = (first / "policy.yaml").stat().st_mtime_ns
    w = PolicyWatcher(root / "policy.yaml", gpu_catalog)
    assert cap(w) == 0.01
    assert w.status().resolved_path == str((first / "policy.yaml").resolve())
    second = _configmap_publish(root, V2, "2026_01_01_00_05_00.000000002")
    os.utime(second / "policy.yaml", ns=(mtime, mtime))  # even with the old mtime
    assert w.check() is True
    assert cap(w) == 0.02
    assert w.status().resolved_path == str((second / "policy.yaml").resolve())
    assert not first.exists()
    # a broken ConfigMap update keeps the policy
    _configmap_publish(root, BROKEN_SCHEMA, "2026_01_01_00_10_00.000000003")
    assert w.check() is False
    assert cap(w) == 0.02
    assert w.status().last_error


def test_rotated_key_file_is_picked_up(tmp_path, gpu_catalog):
    keys = tmp_path / "acme.keys"
    keys.write_text("key-one\n")
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text("tenants:\n  - name: acme\n    api_keys: [{file: acme.keys}]\n"))
    w = PolicyWatcher(path, gpu_catalog)
    assert w.current.resolve_tenant("key-one").name == "acme"
    atomic_write(keys, "key-two\n")
    assert w.check() is True
    assert w.current.resolve_tenant("key-two").name == "acme"
    assert w.current.resolve_tenant("key-one") is None


def test_missing_env_key_rejects_the_new_version(policy_file, gpu_catalog):
    w = PolicyWatcher(policy_file, gpu_catalog, env={})
    atomic_write(policy_file, policy_text("tenants:\n  - name: a\n    api_keys: [{env: NOPE}]\n"))
    assert w.check() is False
    assert cap(w) == 0.01
    assert (
        "tenants[0].api_keys[0].env: environment variable NOPE is not set"
        in w.status().last_error[0]
    )


def test_invalid_at_start_raises_unless_a_fallback_is_given(
    policy_file, gpu_catalog, local_catalog
):
    policy_file.write_text(BROKEN_SCHEMA)
    with pytest.raises(ConfigError) as info:
        PolicyWatcher(policy_file, gpu_catalog)
    assert info.value.issues[0].field == "defaults.cost_cap_usd"
    fallback = default_policy(local_catalog)
    w = PolicyWatcher(policy_file, local_catalog, fallback=fallback)
    assert w.current is fallback
    assert w.status().last_error
    atomic_write(policy_file, V1)
    assert w.check() is True and cap(w) == 0.01


def test_on_change_callback_and_its_failures(policy_file, gpu_catalog):
    seen = []
    w = PolicyWatcher(policy_file, gpu_catalog, on_change=seen.append)
    assert [p.version for p in seen] == [w.current.version]

    def boom(_):
        raise RuntimeError("listener bug")

    w2 = PolicyWatcher(policy_file, gpu_catalog, on_change=boom)
    atomic_write(policy_file, V2)
    assert w2.check() is True  # the swap happened despite the failing listener
    assert cap(w2) == 0.02


def test_background_thread_picks_up_changes(policy_file, gpu_catalog):
    with PolicyWatcher(policy_file, gpu_catalog, interval_s=0.02) as w:
        atomic_write(policy_file, V2)
        deadline = time.monotonic() + 20
        while cap(w) != 0.02 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cap(w) == 0.02
        atomic_write(policy_file, BROKEN_SCHEMA)
        while not w.status().last_error and time.monotonic() < deadline:
            time.sleep(0.01)
        assert w.status().last_error
        assert cap(w) == 0.02
    checked = w.status().checked_at  # stopped on exit: no more polling
    time.sleep(0.1)
    assert w.status().checked_at == checked


def test_readers_always_see_a_complete_policy(policy_file, gpu_catalog):
    w = PolicyWatcher(policy_file, gpu_catalog)
    stop = threading.Event()
    seen: set[float] = set()
    errors: list[BaseException] = []

    def reader():
        try:
            while not stop.is_set():
                policy = w.current
                seen.add(policy.default_tenant.limits().cost_cap_usd)
                assert set(policy.tenants) == {"default"}
                time.sleep(0)  # let the writer run
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        for i in range(20):
            atomic_write(policy_file, V2 if i % 2 == 0 else V1)
            assert w.check() is True
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert not errors
    assert seen <= {0.01, 0.02}


def test_interval_must_be_positive(policy_file, gpu_catalog):
    with pytest.raises(ValueError):
        PolicyWatcher(policy_file, gpu_catalog, interval_s=0)
