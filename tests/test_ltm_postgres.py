"""The long-term tier on PostgreSQL, beyond the tier suite (test_tier_conformance.py runs that on
both layouts): what its driver-level paths (a batch of new rows as one COPY) do when PostgreSQL
refuses, and the sessions of the engine made for an LTM URL."""

from __future__ import annotations

import sqlalchemy

from support import TEST_POSTGRES_URL, unavailable
from tiers.codec import PayloadCodec, pack_contents
from tiers.errors import TierUnavailableError
from tiers.ltm import SQLTier
from tiers.ltm_schema import make_engine
from tiers.record import MemoryRecord


def _record(memory_id: str, step: int, memory_type: str = "state") -> MemoryRecord:
    return MemoryRecord(memory_id, "a", step, memory_type, 1.0, 0.5, pack_contents({"step": step}))


def test_a_batch_postgresql_refuses_is_a_tier_error_and_nothing_of_it_is_kept(private_postgres_engine):
    """A COPY refused by PostgreSQL (a value too long for its column) raises TierUnavailableError,
    not the driver's error; none of the batch is stored, and the next batch goes in."""
    ltm = SQLTier(private_postgres_engine, "refused")
    ltm.codec = PayloadCodec()
    try:
        ltm.put_many("a", [_record("m1", 1)])
        try:
            ltm.put_many("a", [_record("m2", 2), _record("m3", 3, memory_type="x" * 40)])
        except TierUnavailableError as exc:
            assert "value too long" in str(exc), exc
        else:
            raise AssertionError("a row PostgreSQL cannot hold was accepted")
        ltm.put_many("a", [_record("m2", 2), _record("m4", 4)])
        assert [r.memory_id for r in ltm.range("a")] == ["m1", "m2", "m4"]
        with private_postgres_engine.connect() as conn:
            assert conn.execute(sqlalchemy.text("SELECT count(*) FROM tiermem_ltm")).scalar() == 3
    finally:
        ltm.close()


def test_the_ltm_engine_keeps_generic_plans_and_other_engines_do_not():
    """The engine tiermem makes for an LTM URL sets plan_cache_mode on each session (a prepared
    range is not planned again at every call, tiers/ltm_schema.py); an engine made for another
    store keeps the server's setting."""
    for generic in (True, False):
        engine = make_engine(TEST_POSTGRES_URL, None, generic_plans=generic)
        try:
            for _ in range(2):  # a new session, then a pooled one
                try:
                    with engine.connect() as conn:
                        now, server = conn.execute(sqlalchemy.text(
                            "SELECT setting, reset_val FROM pg_settings WHERE name = 'plan_cache_mode'")).one()
                except sqlalchemy.exc.OperationalError as exc:
                    unavailable(f"PostgreSQL at {TEST_POSTGRES_URL}", exc)
                assert now == ("force_generic_plan" if generic else server)
        finally:
            engine.dispose()
