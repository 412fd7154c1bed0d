"""OpenAI's Files and Batches API: offline jobs run by their deadline at the lowest cost.

    protocol.py  wire models (File, Batch, request counts) and the create-batch request
    lines.py     a JSONL input file -> valid lines and per-line errors (line number, field)
    schema.py    the tables (schema component `batch`) and the values stored in them
    store.py     files, jobs and lines in the storage layer (SQLite / PostgreSQL), leases
    pacing.py    pure: which lines run now (earliest deadline first, just fast enough)
    runner.py    the loop in each ingress replica that claims, runs and settles lines

Transport-free except `protocol.py`'s JSON shapes; the HTTP routes live in
`orchestrator.serving.batch_routes`, which wires a runner to the request executor.
"""
