"""The keyword index (indices/keywords.py): BM25 over several tiers' indices scores each memory
as one BM25 over all of them would, whatever tier holds it, and forgets removed memories."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

from indices.keywords import K1, B, KeywordIndex, bm25, words

VOCABULARY = "apple banana cherry delta echo fox golf hotel india juliet kilo lima".split()


def brute_force(texts: dict[int, list[str]], query: list[str]) -> dict[int, float]:
    n = len(texts)
    average = sum(len(t) for t in texts.values()) / n
    scores: dict[int, float] = {}
    for word in dict.fromkeys(query):
        frequency = sum(word in t for t in texts.values())
        if not frequency:
            continue
        idf = math.log(1 + (n - frequency + 0.5) / (frequency + 0.5))
        for doc, text in texts.items():
            count = Counter(text)[word]
            if count:
                scores[doc] = scores.get(doc, 0.0) + idf * count * (K1 + 1) / (count + K1 * (1 - B + B * len(text) / average))
    return scores


@pytest.mark.parametrize("seed", range(5))
def test_bm25_over_tiers_is_one_bm25_over_their_union(seed):
    rng = random.Random(seed)
    tiers = [KeywordIndex() for _ in range(3)]
    texts: dict[tuple[int, int], list[str]] = {}
    for tier_number, tier in enumerate(tiers):
        for row in range(rng.randint(1, 3000 if seed == 0 else 40)):  # seed 0: enough rows to sort some in
            text = " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(1, 12)))
            tier.add(row, text)
            texts[(tier_number, row)] = words(text)
    for tier_number, tier in enumerate(tiers):  # a few removed
        for row in rng.sample(range(len([k for k in texts if k[0] == tier_number])), 1):
            tier.drop(row)
            del texts[(tier_number, row)]
    query = words(" ".join(rng.sample(VOCABULARY, 3) + ["zulu"]))
    expected = brute_force({i: t for i, t in enumerate(texts.values())}, query)
    keys = list(texts)
    got = bm25(tiers, query, [None, None, None])
    for tier_number, (rows, scores) in enumerate(got):
        assert list(scores) == sorted(scores, reverse=True)
        for row, score in zip(rows.tolist(), scores.tolist()):
            assert math.isclose(score, expected[keys.index((tier_number, row))], rel_tol=1e-5)
    assert sum(len(rows) for rows, _ in got) == len(expected)


def test_words_are_lower_cased_and_stemmed_without_stop_words_or_punctuation():
    assert words("The Café's 2 BIG dogs, and a_cat!") == ["café", "s", "2", "big", "dog", "cat"]
    assert words("painted paintings") == words("painting paint")  # stemmed


def test_a_renumbered_index_keeps_the_live_rows_and_their_statistics():
    index = KeywordIndex()
    for row in range(10):
        index.add(row, "alpha" if row % 2 else "beta beta")
    index.drop(3)
    new_of_old = np.array([row if row < 3 else row - 1 for row in range(10)])
    new_of_old[3] = -1
    fresh = index.renumbered(new_of_old)
    rows, counts = fresh.postings("alpha")
    assert rows.tolist() == [1, 4, 6, 8] and counts.tolist() == [1, 1, 1, 1]  # old rows 1, 5, 7, 9
    assert fresh.documents == 9 and fresh.total_length == 14
