"""The `orchestrator predict` output contract and `orchestrator predictor eval`."""

from __future__ import annotations

import json

from predict_helpers import chat

from orchestrator.cli import main

PUBLIC_KEYS = {
    "p50_tokens",
    "p90_tokens",
    "reasoning_probability",
    "reasoning_tokens",
    "class",
    "tier_success",
}
CLASSES = {"standard", "long_form", "reasoning", "long_context"}


def _write_jsonl(path, objs):
    path.write_text("".join(json.dumps(o) + "\n" for o in objs), encoding="utf-8")


def test_predict_writes_one_contract_line_per_request(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    _write_jsonl(
        src,
        [
            chat("Write a 1,500-word short story about a lighthouse keeper."),
            chat("Is 7 a prime number? Yes or no."),
            {"messages": [{"role": "user", "content": "2+2?"}], "max_tokens": 5},
        ],
    )
    assert main(["predict", "--input", str(src)]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 3
    for line in lines:
        assert set(line) == PUBLIC_KEYS
        assert set(line["tier_success"]) == {"small", "medium", "large", "frontier"}
        assert isinstance(line["p50_tokens"], int) and isinstance(line["p90_tokens"], int)
        assert line["p50_tokens"] <= line["p90_tokens"]
        assert 0 <= line["reasoning_probability"] <= 1
        assert line["class"] in CLASSES
    assert lines[0]["p50_tokens"] > lines[1]["p50_tokens"]
    assert lines[2]["p90_tokens"] <= 5


def test_predict_with_profile_and_bad_lines(tmp_path, capsys):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps(chat("hello")) + "\nnot json\n" + json.dumps({"messages": []}) + "\n")
    out = tmp_path / "out.jsonl"
    code = main(["predict", "--input", str(src), "--profile", "smollm2-cpu", "--output", str(out)])
    assert code == 1  # some lines failed
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert set(lines[0]) == PUBLIC_KEYS
    assert lines[1]["error"].startswith("line 2:") and "line 3:" in lines[2]["error"]
    assert main(["predict", "--input", str(src), "--profile", "no-such-profile"]) == 2
    assert "no profile" in capsys.readouterr().err


def test_eval_prints_metrics_for_model_and_baselines(tmp_path, capsys):
    data = tmp_path / "eval.jsonl"
    rows = []
    for i in range(12):
        rows.append(
            {"request": chat(f"Answer yes or no: is {i} even?"), "output_tokens": 3 + i % 3}
        )
        rows.append(
            {
                "request": chat(f"Write a detailed {500 + i * 100}-word essay about topic {i}."),
                "output_tokens": 700 + 50 * i,
                "profile": "gpt-4o-2024-05-13",
            }
        )
    _write_jsonl(data, rows)
    assert main(["predictor", "eval", "--data", str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    methods = result["methods"]
    assert set(methods) == {"model", "constant_median", "length_regression", "bucket_classifier"}
    for metrics in methods.values():
        for key in (
            "kendall_tau",
            "spearman_rho",
            "mae_log",
            "p50_coverage",
            "p90_coverage",
            "bucket_accuracy",
            "latency_p50_ms",
            "latency_p99_ms",
        ):
            assert key in metrics
    # essays above yes/no answers: cross pairs are half of all pairs, all concordant
    assert methods["model"]["kendall_tau"] > 0.3
    assert methods["model"]["p50_coverage"] > 0.2
    assert result["lines"] == 24 and result["skipped"] == 0
    assert main(["predictor", "eval", "--data", str(data), "--online"]) == 0
    table = capsys.readouterr().out
    assert "bucket_classifier" in table and "lat p99 ms" in table


def test_eval_rejects_malformed_files(tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text('{"request": {"messages": []}}\n')
    assert main(["predictor", "eval", "--data", str(data)]) == 2
    assert "bad.jsonl:1" in capsys.readouterr().err


def test_train_leave_out_refuses_bad_use_before_training(tmp_path, capsys):
    assert main(["predictor", "train", "--leave-out", "arena_hard"]) == 2
    assert "--leave-out needs --out" in capsys.readouterr().err
    out = str(tmp_path / "art")
    assert main(["predictor", "train", "--leave-out", "sharegpt", "--out", out]) == 2
    assert "not a source" in capsys.readouterr().err
