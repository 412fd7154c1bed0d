"""Adapters for the private Ray APIs the server relies on, one small module each.

Each wraps exactly one private name and states the behaviour we rely on; `tests/raycompat`
pins that behaviour, so a Ray upgrade that changes it breaks one test, not the server.
Nothing else in the package imports a private Ray name.
"""
