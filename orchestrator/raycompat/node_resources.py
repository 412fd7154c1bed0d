"""Resources still free on each node of the Ray cluster.

Private API: `ray._private.state.available_resources_per_node()` (Ray 2.60). Relied on: called
in a process connected to Ray, it returns `{node id (hex str): {resource name: amount}}` for
the nodes alive, the same ids as `ray.nodes()[i]["NodeID"]`.
"""

from __future__ import annotations


def available_resources_per_node() -> dict[str, dict[str, float]]:
    """Node id -> resources not yet reserved on it (alive nodes only)."""
    import ray._private.state

    return ray._private.state.available_resources_per_node()
