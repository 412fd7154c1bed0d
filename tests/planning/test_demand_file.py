"""The demand file of `orchestrator plan` (docs/controller.md): token sizes carry over from
step to step, and measured latencies either act or are refused."""

from __future__ import annotations

from orchestrator.cli import main
from orchestrator.config_files import parse_yaml_text, validate_loaded
from orchestrator.paths import PROJECT_ROOT
from orchestrator.planning.demand import DemandFile

POLICY = PROJECT_ROOT / "policies" / "gpu-example.yaml"
FAMILY = "llama-3.1-8b-instruct"


def demand(text: str) -> DemandFile:
    return validate_loaded(DemandFile, parse_yaml_text(text, "demand.yaml"))


def test_a_later_step_keeps_the_token_sizes_of_the_last_one():
    steps = demand(
        f"steps:\n  - at_s: 0\n    families:\n      {FAMILY}: "
        "{requests_per_s: 20, input_tokens: 800, output_tokens: 300}\n"
        f"  - at_s: 60\n    families:\n      {FAMILY}: {{requests_per_s: 60}}\n"
        f"  - at_s: 120\n    families:\n      {FAMILY}: {{requests_per_s: 5, output_tokens: 50}}\n"
    ).all_steps()
    sizes = [(s.families[FAMILY].input_tokens, s.families[FAMILY].output_tokens) for s in steps]
    assert sizes == [(800, 300), (800, 300), (800, 50)]
    first_only = demand(f"families:\n  {FAMILY}: {{requests_per_s: 1}}\n").all_steps()
    assert first_only[0].families[FAMILY].input_tokens == 500  # documented first-step default


def run(tmp_path, capsys, profiles: str):
    path = tmp_path / "demand.yaml"
    path.write_text(
        "steps:\n"
        f"  - at_s: 0\n    families:\n      {FAMILY}: "
        "{requests_per_s: 20, input_tokens: 800, output_tokens: 300}\n"
        f"    profiles:\n      llama8b-fp8-ngram: {profiles}\n"
        f"  - at_s: 60\n    families:\n      {FAMILY}: {{requests_per_s: 20}}\n",
        encoding="utf-8",
    )
    code = main(["plan", "--policy", str(POLICY), "--demand", str(path)])
    return code, capsys.readouterr()


def test_a_measured_tpot_corrects_the_profile_speed(tmp_path, capsys):
    code, out = run(
        tmp_path, capsys, "{replicas_current: 2, requests_running: 40, tpot_ms: {p50: 60}}"
    )
    assert code == 0
    second = out.out.split("t=60s")[1]
    row = next(ln for ln in second.splitlines() if ln.split()[:1] == ["llama8b-fp8-ngram"])
    assert "measured speed x0.87 of the catalog's" in row
    code, out = run(tmp_path, capsys, "{replicas_current: 2, requests_running: 40}")
    assert "measured speed" not in out.out  # without the TPOT: the catalog's speed


def test_a_tpot_on_an_unloaded_profile_is_refused(tmp_path, capsys):
    code, out = run(tmp_path, capsys, "{replicas_current: 2, tpot_ms: {p95: 80}}")
    assert code == 1
    assert "profiles.llama8b-fp8-ngram.tpot_ms" in out.err and "requests_running" in out.err


def test_the_documented_example_runs(tmp_path, capsys):
    doc = (PROJECT_ROOT / "docs" / "controller.md").read_text(encoding="utf-8")
    block = doc.split("### The demand file")[1].split("```yaml\n")[1].split("```")[0]
    steps = demand(block).all_steps()
    assert [s.families["qwen3-8b"].input_tokens for s in steps] == [800, 800]
    path = tmp_path / "demand.yaml"
    path.write_text(block, encoding="utf-8")
    assert main(["plan", "--policy", str(POLICY), "--demand", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("t=") == 2 and "UNPLACED qwen3-8b" in out and "measured speed" in out
