"""The controller at the edges: Ray Serve actuation of the pure planner (orchestrator.planning).

- `meters.py`: windowed counters the ingress (demand) and the profile replicas (latency) keep,
  exported to Serve as custom autoscaling metrics (`record_autoscaling_stats`);
- `refused.py`: requests refused for capacity recorded as demand for the profile they were
  meant for (so a shedding profile grows);
- `serve_policy.py`: the autoscaling policy classes Serve runs in its controller; they build an
  Observation from Serve's contexts, run `plan` every `autoscaling.interval_s` and return the
  targets (Serve's own delays and factors are neutralised, see `autoscaling_config`);
- `status.py`: where the last decision is published (a small named actor) and read back;
- `alerts.py`: the spend-ceiling alert (log line, Kubernetes Event).
See docs/controller.md.
"""
