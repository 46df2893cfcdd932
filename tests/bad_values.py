"""Strategies of bad values for the property tests of the public calls (test_*_properties.py).

Each strategy yields values a call must refuse: never one that would pass for the argument it is
drawn for, so a call that does not raise is a missing check, not an unlucky draw.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from memory.validation import MAX_COUNT, MAX_SECONDS

# Bounded: the whole suite must stay well inside CI's time; the fixtures are function-scoped on
# purpose (each test gets its own engine, reused across that test's examples).
SETTINGS = settings(max_examples=10, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

SURROGATE = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
# Ints beyond every bound: 2**53 + 1 and up, and powers of ten too large for a float (10**5000 has no
# repr, so it is made by map rather than kept in the strategy, which hypothesis prints).
HUGE_INTS = st.sampled_from([2**53 + 1, 2**63, 2**64, 400, -400, 5000]).map(
    lambda n: n if n > 5000 else (10**n if n > 0 else -(10**-n)))
NON_FINITE = st.sampled_from([math.nan, math.inf, -math.inf])


def containing(chars: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Texts with at least one of ``chars`` somewhere in them."""
    return st.builds(lambda a, c, b: a + c + b, st.text(max_size=3), chars, st.text(max_size=3))


UNENCODABLE = containing(SURROGATE | st.just("\x00"))
OBJECTS = st.one_of(st.builds(object), st.sampled_from([1j, frozenset({1}), set(), Ellipsis]))  # msgpack takes none
ARRAYS = st.just(np.array([[1, 2], [3, 4]]))  # comparing one with == gives an array, whose truth is an error
NOT_STR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.binary(max_size=3),
                    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
                    OBJECTS, ARRAYS)
NOT_STR_OR_NONE = NOT_STR.filter(lambda v: v is not None)
NOT_MAPPING = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=3), st.binary(max_size=3),
                        st.lists(st.integers(), max_size=2), st.tuples(st.text(max_size=2), st.integers()), OBJECTS)
HASHABLE_NOT_STR = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.binary(max_size=3),
                             st.tuples(st.integers()))


def bad_counts(minimum: int, maximum: int = MAX_COUNT) -> st.SearchStrategy[Any]:
    """Never an int in [minimum, maximum]."""
    return st.one_of(st.integers(max_value=minimum - 1), st.integers(min_value=maximum + 1), HUGE_INTS, st.floats(),
                     st.booleans(), st.text(max_size=3), OBJECTS, st.lists(st.integers(), max_size=1))


BAD_SECONDS = st.one_of(st.floats(max_value=0.0), st.floats(min_value=MAX_SECONDS, exclude_min=True), NON_FINITE,
                        st.integers(max_value=0), HUGE_INTS, st.booleans(), st.text(max_size=3), st.none(), OBJECTS)


def one_bad(good: dict[str, Any], **bad: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments: the ``good`` ones with exactly one replaced by a value from its ``bad`` strategy."""
    return st.one_of(*[values.map(lambda value, name=name: {**good, name: value}) for name, values in bad.items()])
