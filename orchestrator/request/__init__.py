"""The request core: a request spec read once from the body, admission and routing as pure
functions returning a route or a refusal (`plan.py`). Transport-free: it imports nothing from
`serving/` (the HTTP edge) or `simulate/` (the replay); both call it."""
