"""What the ingress and the profile replicas tell the controller, below both of them.

- `meters.py`: windowed meters the ingress (`DemandMeter`: admitted and refused demand, spend
  per profile) and the profile replicas (`LatencyMeter`: TTFT and TPOT) keep, exported to Serve
  as custom autoscaling metrics (`record_autoscaling_stats`);
- `refusals.py`: a request refused for capacity, recorded as demand for the profile it was
  meant for (so a shedding profile grows);
- `serve_contexts.py`: the controller's reading of them: Serve's autoscaling contexts into the
  planner's `ProfileObservation`.
Pure: time is passed in, no Ray calls.
"""
