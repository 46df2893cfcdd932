"""Attribute conditions (indices/conditions.py) on contents as msgpack returns them, and the
attribute index (indices/attributes.py): its answer always holds every memory the exact test
accepts, whatever the contents and the conditions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from indices.attributes import MAX_ITEMS, AttributeIndex, contents_of
from indices.conditions import matcher, parse
from tiers.codec import pack_contents
from tiers.errors import InvalidInputError
from tiers.record import unpack_contents

CONTENTS = {
    "inventory": {"wood": 3, "stone": 0, "tools": ["axe", "saw"]},
    "position": [10, 20],
    "alive": True,
    "health": 0.75,
    "a.b": "the key with a dot",
    "a": {"b": "the nested key"},
    "empty": {},
    "none": None,
}


def stored(contents):
    """Contents as the index reads them back from a tier."""
    return contents_of(pack_contents(contents))


def matches(wanted, contents=CONTENTS) -> bool:
    return matcher(parse(wanted))(unpack_contents(pack_contents(contents)))


@pytest.mark.parametrize(
    "wanted, expected",
    [
        ({"inventory.wood": 3}, True),
        ({"inventory.wood": 3.0}, True),  # numbers compare as numbers
        ({"inventory.wood": 3, "inventory.stone": 0}, True),
        ({"inventory.wood": 4}, False),
        ({"inventory.iron": 0}, False),  # a missing path never matches, not even None
        ({"none": None}, True),
        ({"inventory.tools.1": "saw"}, True),
        ({"inventory.tools.-1": "saw"}, True),
        ({"inventory.tools.2": "saw"}, False),
        ({"position": [10, 20]}, True),
        ({"position": (10, 20)}, True),
        ({"position": [10]}, False),
        ({"position.0": 10}, True),
        ({"position.x": 10}, False),
        ({"alive": True}, True),
        ({"alive": 1}, False),  # a bool is never a number
        ({"inventory.stone": False}, False),
        ({"a.b": "the key with a dot"}, True),  # a key that contains the dots wins
        ({"inventory": {"wood": 3, "stone": 0, "tools": ["axe", "saw"]}}, True),
        ({"inventory": {"wood": 3}}, False),  # a dict matches whole
        ({"empty": {}}, True),
        ({"health.x": 1}, False),
        ({"health": {"$gt": 0.5}}, True),
        ({"health": {"$gt": 0.75}}, False),
        ({"health": {"$gte": 0.75, "$lt": 1}}, True),
        ({"inventory.wood": {"$lte": 2}}, False),
        ({"inventory.wood": {"$in": [1, 3, 5]}}, True),
        ({"inventory.wood": {"$in": [True, 4]}}, False),
        ({"inventory.wood": {"$ne": 4}}, True),
        ({"inventory.wood": {"$ne": 3}}, False),
        ({"inventory.iron": {"$ne": 3}}, True),  # a missing path is "not equal"
        ({"inventory.iron": {"$gt": 0}}, False),
        ({"alive": {"$gte": 0}}, False),  # a bool is not a number for a range either
        ({"none": {"$eq": None}}, True),
        ({"position": {"$eq": [10, 20]}}, True),
    ],
)
def test_conditions_hold_exactly_on_dot_paths(wanted, expected):
    assert matches(wanted) is expected


def test_contents_that_are_not_a_dict_match_nothing_but_indexes():
    assert matches({"0": "first"}, ["first", "second"]) is True
    assert matches({"x": 1}, "plain text") is False
    assert matches({"x": 1}, None) is False


@pytest.mark.parametrize(
    "wanted, message",
    [
        ({"x": {"$gt": "a"}}, "takes a number"),
        ({"x": {"$gt": True}}, "takes a number"),
        ({"x": {"$lt": math.nan}}, "NaN"),
        ({"x": {"$in": []}}, "non-empty list"),
        ({"x": {"$in": 3}}, "non-empty list"),
        ({"x": {"$like": 3}}, "unknown operator"),
        ({"x": {"$gt": 1, "y": 2}}, "mixes operators"),
    ],
)
def test_bad_conditions_are_refused_with_the_reason(wanted, message):
    with pytest.raises(InvalidInputError, match=message):
        parse(wanted)


# -- the index never misses a match ----------------------------------------------------------------
KEYS = st.sampled_from(["a", "b", "c", "a.b", "0", "1"])
SCALARS = st.one_of(
    st.integers(-3, 3), st.sampled_from([0.5, -0.0, 1.0, 2.5, math.inf, math.nan, 2**53 + 1, -(2**60)]),
    st.booleans(), st.none(), st.sampled_from(["x", "y", ""]))
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(KEYS, inner, max_size=3)), max_leaves=8)
PATHS = st.lists(KEYS, min_size=1, max_size=3).map(".".join) | st.sampled_from(["a.-1", "a.0.b", f"a.{MAX_ITEMS}"])
OPERANDS = st.one_of(SCALARS, st.lists(SCALARS, max_size=2), st.dictionaries(KEYS, SCALARS, max_size=2))
NUMBERS = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, 2.5, -math.inf, 2**53]))
CONDITION = st.one_of(
    st.tuples(PATHS, OPERANDS),
    st.tuples(PATHS, st.tuples(st.sampled_from(["$eq", "$ne"]), OPERANDS).map(lambda t: {t[0]: t[1]})),
    st.tuples(PATHS, st.dictionaries(st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$ne"]), NUMBERS, min_size=1)),
    st.tuples(PATHS, st.lists(SCALARS, min_size=1, max_size=3).map(lambda v: {"$in": v})),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(KEYS, VALUES, max_size=4) | VALUES, min_size=1, max_size=12),
       st.lists(CONDITION, min_size=1, max_size=3), st.sampled_from([None, ("a",), ("b", "c.a")]))
def test_the_index_answers_a_superset_of_the_exact_matches(memories, wanted, paths):
    index = AttributeIndex(paths)
    blobs = [pack_contents(contents) for contents in memories]
    for row, blob in enumerate(blobs):
        index.add(row, contents_of(blob))
    conditions = parse(unpack_contents(pack_contents(dict(wanted))))
    exact = {row for row, blob in enumerate(blobs) if matcher(conditions)(unpack_contents(blob))}
    every = lambda: np.arange(len(blobs))  # noqa: E731
    found = index.candidates(conditions, every)
    if found is not None:
        assert exact <= set(found.tolist())
        assert list(found) == sorted(set(found.tolist()))


def test_selective_conditions_find_only_their_rows_sorted_or_not():
    index = AttributeIndex()
    for row in range(5000):
        index.add(row, stored({"kind": "trade" if row % 100 == 7 else "move", "reward": row % 50,
                                      "pos": [row % 10, row // 10]}))
        if row == 2500:  # half of the rows sorted into the columns, half still waiting
            index.candidates(parse({"kind": "x"}), lambda: np.arange(2501))
    every = lambda: np.arange(5000)  # noqa: E731
    trades = index.candidates(parse({"kind": "trade"}), every)
    assert trades.tolist() == list(range(7, 5000, 100))
    assert index.candidates(parse({"kind": "trade", "pos.0": 7}), every).tolist() == list(range(7, 5000, 100))
    assert index.candidates(parse({"kind": "trade", "pos.1": {"$gte": 40, "$lt": 42}}), every).tolist() == [407]
    # a wide range beside a selective equality is left to the exact test: a superset of the trades
    assert index.candidates(parse({"kind": "trade", "reward": {"$gte": 10}}), every).tolist() == trades.tolist()
    assert index.candidates(parse({"pos": [3, 7]}), every).tolist() == [73]
    assert len(index.candidates(parse({"kind": {"$ne": "move"}}), every)) == 50
    assert index.candidates(parse({"reward": {"$in": [1, 2]}, "pos.0": 1}), every).tolist() == \
        [row for row in range(5000) if row % 50 in (1, 2) and row % 10 == 1]


def test_a_renumbered_index_keeps_the_live_rows_under_their_new_numbers():
    index = AttributeIndex()
    for row in range(10):
        index.add(row, stored({"k": row % 3}))
    new_of_old = np.array([-1 if row % 2 else row // 2 for row in range(10)])  # odd rows removed
    fresh = index.renumbered(new_of_old)
    assert fresh.candidates(parse({"k": 0}), lambda: np.arange(5)).tolist() == [0, 3]  # old rows 0 and 6


def test_the_index_round_trips_through_its_arrays():
    index = AttributeIndex()
    for row in range(100):
        index.add(row, stored({"k": row % 7, "s": f"v{row % 3}", "a.b": 1} if row == 5 else
                                     {"k": row % 7, "s": f"v{row % 3}"}))
    copy = AttributeIndex()
    copy.from_arrays(index.to_arrays())
    every = lambda: np.arange(100)  # noqa: E731
    for wanted in ({"k": 3}, {"s": "v1"}, {"k": {"$gt": 4}}, {"a.b": 1}):
        assert copy.candidates(parse(wanted), every).tolist() == index.candidates(parse(wanted), every).tolist()
