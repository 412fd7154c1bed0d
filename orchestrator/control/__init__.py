"""The controller at the edges: Ray Serve actuation of the pure planner (orchestrator.planning).

It actuates only; what it reads of the ingress and the replicas (demand, refusals, latency) is
in `orchestrator.signals`, and the policy comes through the same `PolicyWatcher` the ingress
uses (so both plan under one policy version).

- `hub.py`: the controller's state in the Serve controller process: the latest contexts, the
  policy watcher, and one `plan` per `autoscaling.interval_s`;
- `serve_policy.py`: the autoscaling policy classes Serve runs in its controller; they build an
  Observation from Serve's contexts, run `plan` every `autoscaling.interval_s` and return the
  targets (Serve's own delays and factors are neutralised, see `autoscaling_config`);
- `ingress_scaling.py`: the ingress deployment's replica bounds and ongoing-request target;
- `status.py`: where the last decision is published (a small named actor) and read back;
- `alerts.py`: the spend-ceiling alert (log line, Kubernetes Event).
See docs/controller.md.
"""
