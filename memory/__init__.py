"""tiermem: a tiered memory engine for agents.

The public entry points live in :mod:`memory.api`; this package init stays empty of imports so
that the tiers can import :mod:`memory.record` and :mod:`memory.errors` without pulling the
engine in.
"""
