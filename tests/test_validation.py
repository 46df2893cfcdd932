"""memory.validation's building blocks: what every public call's checks are made of."""

from __future__ import annotations

import math

import pytest

from memory import validation
from tiers.errors import InvalidInputError, MemoryConfigException


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


def test_shown_never_raises_and_stays_short():
    assert validation.shown(10**5000) == f"an int of {(10**5000).bit_length()} bits"
    assert validation.shown(Unprintable()) == "a Unprintable"
    assert len(validation.shown("x" * 10_000)) == 80
    assert validation.shown("\ud800") == "'\\ud800'"


@pytest.mark.parametrize("value, expected", [
    (1, True), (1.5, True), (-0.0, True), (10**300, True), (True, False), (math.nan, False), (math.inf, False),
    (10**400, False), (-(10**400), False), ("1", False), (None, False), (1j, False),
])
def test_is_number_means_a_finite_float_can_hold_it(value, expected):
    assert validation.is_number(value) is expected


def test_counts_are_bounded_ints_and_errors_come_in_the_callers_class():
    assert validation.count(validation.MAX_COUNT, "n") == 2**53
    for bad in (validation.MAX_COUNT + 1, -1, True, 1.0, "1", None):
        with pytest.raises(InvalidInputError, match="n must be"):
            validation.count(bad, "n")
    with pytest.raises(MemoryConfigException, match="seconds up to 10\\*\\*12"):
        validation.seconds(10**13, "ttl", error=MemoryConfigException)
    assert validation.seconds(0, "idle", zero=True) == 0.0


@pytest.mark.parametrize("value, words", [
    ("a\ud800b", "lone surrogate"), ("a\x00b", "NUL"), ("x" * 11, "11 characters"), (b"bytes", "must be a str"),
])
def test_text_is_what_every_store_takes(value, words):
    with pytest.raises(InvalidInputError, match=words):
        validation.text(value, "name", 10)
    assert validation.text("héllo — 你好", "name", 10) == "héllo — 你好"


def test_key_names_sorts_keys_of_any_type():
    assert validation.key_names({5, None, "b", (1, 2)}) == "['b', (1, 2), 5, None]"
