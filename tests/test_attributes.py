"""Exact attribute matching on dot paths (memory/_engine/attributes.py), on contents as msgpack returns them."""

from __future__ import annotations

import pytest

from memory._engine.attributes import matcher

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
    ],
)
def test_matches_exactly_on_dot_paths(wanted, expected):
    assert matcher(wanted)(CONTENTS) is expected


def test_contents_that_are_not_a_dict_match_nothing_but_indexes():
    assert matcher({"0": "first"})(["first", "second"]) is True
    assert matcher({"x": 1})("plain text") is False
    assert matcher({"x": 1})(None) is False
