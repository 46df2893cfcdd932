"""The state encoder: deterministic, normalized, near for small changes, far for large ones."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from embeddings.state import StateEncoder

ROOT = Path(__file__).resolve().parent.parent
SIM_STATE = {
    "step": 1234, "x": 65, "y": 84, "heading": "W", "terrain": "grass", "health": 99.98,
    "energy": 99.38, "hunger": 0.487, "reward": -0.954, "action": "move", "goal": "socialize",
    "mood": "afraid", "alive": True, "inventory": {"wood": 5, "stone": 8, "food": 1, "gold": 8},
    "visible": ["agent-003", "agent-028"], "position": [10, 20], "note": None,
}


@pytest.fixture
def encoder():
    return StateEncoder()


def cos(encoder, a, b) -> float:
    return float(encoder.encode(a) @ encoder.encode(b))


def test_vector_shape_dtype_and_unit_norm(encoder):
    for state in (SIM_STATE, {}, {"a": 0}, {"a": []}, {"a": {}}, {"a": None}, {"x": -1e300}):
        vector = encoder.encode(state)
        assert vector.shape == (128,)
        assert vector.dtype == np.float32
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
        assert np.isfinite(vector).all()


@pytest.mark.parametrize("dim", [8, 64, 384, 1000])
def test_any_dim_of_at_least_eight(dim):
    encoder = StateEncoder(dim)
    assert encoder.dim == dim
    assert encoder.encode(SIM_STATE).shape == (dim,)


@pytest.mark.parametrize("dim", [7, 0, -1, 12.0, "128", True, None])
def test_bad_dim_is_a_value_error(dim):
    with pytest.raises(ValueError, match="dim"):
        StateEncoder(dim)


def test_same_state_same_vector_whatever_the_key_order(encoder):
    reordered = dict(reversed(list(SIM_STATE.items())))
    reordered["inventory"] = dict(reversed(list(SIM_STATE["inventory"].items())))
    assert encoder.encode(SIM_STATE).tobytes() == encoder.encode(reordered).tobytes()
    assert encoder.encode(SIM_STATE).tobytes() == StateEncoder().encode(SIM_STATE).tobytes()


def test_deterministic_across_processes_with_different_hash_seeds(encoder):
    """Python's hash() differs per process; the encoder must not depend on it."""
    script = (
        "import json, sys; from embeddings.state import StateEncoder; "
        "print(StateEncoder(96).encode(json.loads(sys.argv[1])).tobytes().hex())"
    )
    outputs = set()
    for seed in ("1", "2", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run(
            [sys.executable, "-c", script, json.dumps(SIM_STATE)],
            env=env, cwd=ROOT, capture_output=True, text=True, check=True,
        )
        outputs.add(result.stdout.strip())
    assert outputs == {StateEncoder(96).encode(json.loads(json.dumps(SIM_STATE))).tobytes().hex()}


def test_a_small_change_is_near_and_a_large_one_far(encoder):
    here = {"position": [10, 20], "health": 0.85}
    assert cos(encoder, here, {"position": [12, 22], "health": 0.8}) > 0.9
    assert cos(encoder, here, {"position": [500, -300], "health": 0.0}) < 0.6
    assert cos(encoder, here, {"name": "bob", "alive": False}) < 0.3


def test_numeric_similarity_falls_with_the_difference(encoder):
    sims = [cos(encoder, {"x": 10}, {"x": other}) for other in (10, 11, 20, 100, 10_000)]
    assert sims[0] == pytest.approx(1.0, abs=1e-6)
    assert sims == sorted(sims, reverse=True)
    assert sims[1] > 0.95
    assert sims[-1] < 0.5  # magnitude matters even for a lone number (the presence bias)
    assert cos(encoder, {"x": 5}, {"x": -5}) < 0.5
    assert cos(encoder, {"x": 0.85}, {"x": 0.8}) > 0.99


def test_a_huge_number_does_not_drown_the_other_features(encoder):
    """Each leaf weighs the same, whatever its magnitude."""
    base = {"big": 1e12, "a": "red", "b": 3}
    small = {"big": 1, "a": "red", "b": 3}
    changed = dict(base, a="blue", b=300)
    changed_small = dict(small, a="blue", b=300)
    assert cos(encoder, base, changed) == pytest.approx(cos(encoder, small, changed_small), abs=0.1)
    assert cos(encoder, base, changed) < 0.7


def test_strings_bools_and_none_are_categories(encoder):
    assert cos(encoder, {"mood": "happy"}, {"mood": "happy"}) == pytest.approx(1.0, abs=1e-6)
    assert cos(encoder, {"mood": "happy"}, {"mood": "afraid"}) < 0.6
    assert cos(encoder, {"alive": True}, {"alive": False}) < 0.6
    assert cos(encoder, {"alive": True}, {"alive": 1}) < 0.6
    assert cos(encoder, {"v": None}, {"v": 0}) < 0.6
    assert cos(encoder, {"v": None}, {"v": "None"}) < 0.6


def test_string_lists_are_bags_and_number_lists_are_indexed(encoder):
    assert cos(encoder, {"seen": ["a", "b"]}, {"seen": ["b", "a"]}) == pytest.approx(1.0, abs=1e-6)
    overlap = cos(encoder, {"seen": ["a", "b", "c"]}, {"seen": ["a", "b", "d"]})
    disjoint = cos(encoder, {"seen": ["a", "b", "c"]}, {"seen": ["x", "y", "z"]})
    assert disjoint < overlap < 1.0
    assert cos(encoder, {"position": [10, 200]}, {"position": [200, 10]}) < 0.7
    assert cos(encoder, {"position": [10, 20, 3]}, {"position": [10, 20]}) < 0.95


def test_nested_dicts_change_with_their_leaves(encoder):
    rich = {"inventory": {"wood": 5, "stone": 2}, "mood": "calm"}
    assert cos(encoder, rich, {"inventory": {"wood": 6, "stone": 2}, "mood": "calm"}) > 0.9
    assert cos(encoder, rich, {"inventory": {"gold": 900}, "mood": "calm"}) < 0.6
    lists_of_dicts = {"events": [{"kind": "trade", "qty": 2}, {"kind": "move"}]}
    assert cos(encoder, lists_of_dicts, lists_of_dicts) == pytest.approx(1.0, abs=1e-6)


def test_numpy_and_other_real_scalars_encode_like_python_numbers(encoder):
    plain = encoder.encode({"a": 3.0, "b": 7, "c": True, "d": 0.5})
    exotic = encoder.encode({"a": np.float64(3.0), "b": np.int64(7), "c": np.bool_(True), "d": Fraction(1, 2)})
    assert plain.tobytes() == exotic.tobytes()
    assert encoder.encode({"t": (1, 2)}).tobytes() == encoder.encode({"t": [1, 2]}).tobytes()


def test_non_finite_and_huge_numbers_still_give_unit_vectors(encoder):
    for value in (float("nan"), float("inf"), -float("inf"), 10**400, -(10**400)):
        vector = encoder.encode({"x": value, "y": 1})
        assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    assert cos(encoder, {"x": float("inf")}, {"x": -float("inf")}) < 0.6
    assert cos(encoder, {"x": 10**400}, {"x": -(10**400)}) < 0.6


@pytest.mark.parametrize(
    "state, path",
    [
        ({"a": {"b": [1, object()]}}, "a.b[1]"),
        ({"blob": b"raw"}, "blob"),
        ({"tags": {"x", "y"}}, "tags"),
        ({"when": {"t": complex(1, 2)}}, "when.t"),
        ({("tuple", "key"): 1}, "<root>"),
        (object(), "<root>"),
    ],
)
def test_unsupported_values_are_a_type_error_naming_the_path(encoder, state, path):
    with pytest.raises(TypeError, match=f"at '{path}'".replace("[", r"\[").replace("]", r"\]")):
        encoder.encode(state)


def test_too_deep_or_cyclic_states_are_a_value_error(encoder):
    cyclic: dict = {}
    cyclic["self"] = cyclic
    with pytest.raises(ValueError, match="nested deeper"):
        encoder.encode(cyclic)
    deep: dict = {"leaf": 1}
    for _ in range(40):
        deep = {"d": deep}
    with pytest.raises(ValueError, match="nested deeper"):
        encoder.encode(deep)


def test_encode_many_stacks_rows_equal_to_encode(encoder):
    states = [SIM_STATE, {"x": 1}, {}]
    matrix = encoder.encode_many(states)
    assert matrix.shape == (3, 128) and matrix.dtype == np.float32
    for row, state in zip(matrix, states):
        assert row.tobytes() == encoder.encode(state).tobytes()
    assert encoder.encode_many(iter(states)).tobytes() == matrix.tobytes()
    empty = encoder.encode_many([])
    assert empty.shape == (0, 128) and empty.dtype == np.float32


def test_random_walk_neighbours_in_time_are_neighbours_in_space(encoder):
    """On a simulated agent, states a step apart are nearer than states far apart in time."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from bench_engine import SimAgent
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))
    agent = SimAgent(3, seed=7)
    vectors = encoder.encode_many([agent.state(step) for step in range(600)])
    adjacent = np.einsum("ij,ij->i", vectors[:-1], vectors[1:]).mean()
    distant = np.einsum("ij,ij->i", vectors[:300], vectors[300:]).mean()
    assert adjacent > distant + 0.1


def test_the_slot_cache_stays_bounded_and_never_changes_a_vector(monkeypatch):
    from embeddings import state as state_module

    monkeypatch.setattr(state_module, "CACHE_LIMIT", 50)
    encoder = StateEncoder()
    before = encoder.encode(SIM_STATE)
    for i in range(300):  # a unique id per state, as a stream of events has
        encoder.encode({"id": f"event-{i}", "n": i})
        cached = sum(1 + len(entry[2]) + len(entry[3]) + len(entry[4]) for entry in encoder._paths.values())
        assert cached <= 50
    assert encoder.encode(SIM_STATE).tobytes() == before.tobytes()


def test_cached_small_ints_encode_as_computed_ones():
    """Small ints keep their bins' weights per path; a vector built from the cache is the one
    built fresh, bit for bit, on both sides of the cached range and for floats of equal value."""
    from embeddings.state import SMALL_INT

    states = [{"n": n, "m": [n, -n], "f": float(n)} for n in (0, 1, 7, SMALL_INT - 1, SMALL_INT, -SMALL_INT, 10**6)]
    warmed = StateEncoder()
    first = [warmed.encode(state).tobytes() for state in states]
    again = [warmed.encode(state).tobytes() for state in states]
    fresh = [StateEncoder().encode(state).tobytes() for state in states]
    assert first == again == fresh
    assert StateEncoder().encode({"n": 5}).tobytes() == StateEncoder().encode({"n": 5.0}).tobytes()
