"""The keyword index of one tier's memories: BM25 postings of the words of their text (the text
the text model embeds, embeddings/text.py), for the keyword half of hybrid text search. Words
are lower-cased, stop words dropped and the rest stemmed (Snowball, by PyStemmer), so "painted"
finds "painting".

Postings are kept as three parallel arrays sorted by (term, row) (compressed sparse rows), with
the postings learnt since waiting in short lists that queries scan; past PENDING_SHARE of the
sorted ones they are merged in. A removed row stays in the postings until the tier index
compacts; statistics (documents, total length, document frequencies) count live rows only, so
scores are those of the live memories. BM25's corpus statistics are the agent's, summed over its
tiers by the caller (:func:`bm25`), so a memory scores the same whichever tier holds it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
import Stemmer

PENDING_MIN = 4096
PENDING_SHARE = 0.125
K1, B = 1.2, 0.75  # BM25's term-frequency saturation and length normalisation

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_STEMMER = Stemmer.Stemmer("english")  # Snowball's English stemmer: "painted", "painting" -> "paint"
STOPWORDS = frozenset(
    "a an and are as at be been but by did do does for from had has have he her his i if in into is it its "
    "me my of on or our she so that the their them then there these they this to was we were what when where "
    "which who will with you your".split())


def words(text: str) -> list[str]:
    """The indexed words of a text: lower-cased runs of letters and digits, without stop words,
    stemmed."""
    return _STEMMER.stemWords([word for word in _WORD.findall(text.lower()) if word not in STOPWORDS])


class KeywordIndex:
    def __init__(self) -> None:
        self._vocabulary: dict[str, int] = {}
        self._terms = np.empty(0, dtype=np.int32)  # sorted postings: term id, row, frequency
        self._rows = np.empty(0, dtype=np.int32)
        self._counts = np.empty(0, dtype=np.float32)
        self._new: tuple[list[int], list[int], list[int]] = ([], [], [])
        self._lengths = np.zeros(0, dtype=np.float32)  # words per row (0: no text, or removed)
        self.documents = 0
        self.total_length = 0.0

    def add(self, row: int, text: str | None) -> None:
        """Index a new row's text."""
        if not text:
            return
        found = Counter(words(text))
        if not found:
            return
        terms, rows, counts = self._new
        vocabulary = self._vocabulary
        for word, count in found.items():
            term = vocabulary.get(word)
            if term is None:
                term = vocabulary[word] = len(vocabulary)
            terms.append(term)
            rows.append(row)
            counts.append(count)
        length = sum(found.values())
        if row >= len(self._lengths):
            self._lengths = np.concatenate([self._lengths, np.zeros(max(row + 1, 2 * len(self._lengths), 64)
                                                                    - len(self._lengths), dtype=np.float32)])
        self._lengths[row] = length
        self.documents += 1
        self.total_length += length
        if len(terms) > max(PENDING_MIN, PENDING_SHARE * len(self._terms)):
            self._settle()

    def drop(self, row: int) -> None:
        """A removed row: out of the statistics now, out of the postings at the next compaction."""
        if row < len(self._lengths) and self._lengths[row]:
            self.documents -= 1
            self.total_length -= float(self._lengths[row])
            self._lengths[row] = 0

    def postings(self, word: str) -> tuple[np.ndarray, np.ndarray]:
        """(rows, frequencies) of a word among the live rows."""
        term = self._vocabulary.get(word)
        if term is None:
            return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)
        start, stop = np.searchsorted(self._terms, [term, term + 1])
        rows, counts = self._rows[start:stop].astype(np.int64), self._counts[start:stop]
        new_terms, new_rows, new_counts = self._new
        if new_terms:
            fresh = np.asarray(new_terms, dtype=np.int32) == term
            if fresh.any():
                rows = np.concatenate([rows, np.asarray(new_rows, dtype=np.int64)[fresh]])
                counts = np.concatenate([counts, np.asarray(new_counts, dtype=np.float32)[fresh]])
        live = self._lengths[rows] > 0
        return rows[live], counts[live]

    def lengths(self, rows: np.ndarray) -> np.ndarray:
        return self._lengths[rows]

    def _settle(self) -> None:
        terms, rows, counts = self._new
        if not terms:
            return
        all_terms = np.concatenate([self._terms, np.asarray(terms, dtype=np.int32)])
        all_rows = np.concatenate([self._rows, np.asarray(rows, dtype=np.int32)])
        order = np.lexsort((all_rows, all_terms))
        self._terms, self._rows = all_terms[order], all_rows[order]
        self._counts = np.concatenate([self._counts, np.asarray(counts, dtype=np.float32)])[order]
        self._new = ([], [], [])

    def renumbered(self, new_of_old: np.ndarray) -> KeywordIndex:
        """The same index over renumbered rows (``new_of_old[row]``; -1 for a dropped row)."""
        self._settle()
        fresh = KeywordIndex()
        fresh._vocabulary = self._vocabulary
        moved = new_of_old[self._rows] if len(self._rows) else self._rows.astype(np.int64)
        kept = moved >= 0
        fresh._terms, fresh._rows, fresh._counts = self._terms[kept], moved[kept].astype(np.int32), self._counts[kept]
        old = np.zeros(len(new_of_old), dtype=np.float32)
        held = min(len(old), len(self._lengths))
        old[:held] = self._lengths[:held]
        live = new_of_old >= 0
        fresh._lengths = np.zeros(int(live.sum()), dtype=np.float32)
        fresh._lengths[new_of_old[live]] = old[live]
        fresh.documents, fresh.total_length = self.documents, self.total_length
        return fresh

    def nbytes(self) -> int:
        return (self._terms.nbytes + self._rows.nbytes + self._counts.nbytes + self._lengths.nbytes
                + 100 * len(self._vocabulary) + 100 * len(self._new[0]))


def bm25(indices: Sequence[KeywordIndex], query: Iterable[str], allowed: Sequence[np.ndarray | None]
         ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Each index's (rows, BM25 scores) for the query's words, best first, over the rows
    ``allowed`` says (None: all), with the statistics of all the indices together."""
    documents = sum(index.documents for index in indices)
    if not documents:
        return [(np.empty(0, dtype=np.int64), np.empty(0)) for _ in indices]
    average = sum(index.total_length for index in indices) / documents
    found = [[index.postings(word) for word in dict.fromkeys(query)] for index in indices]
    words_count = len(found[0]) if found else 0
    out: list[tuple[np.ndarray, np.ndarray]] = []
    for position, index in enumerate(indices):
        rows_parts, score_parts = [], []
        for term in range(words_count):
            frequency = sum(len(per_index[term][0]) for per_index in found)
            if not frequency:
                continue
            idf = math.log(1 + (documents - frequency + 0.5) / (frequency + 0.5))
            rows, counts = found[position][term]
            if not len(rows):
                continue
            norm = K1 * (1 - B + B * index.lengths(rows) / average)
            rows_parts.append(rows)
            score_parts.append(idf * counts * (K1 + 1) / (counts + norm))
        if not rows_parts:
            out.append((np.empty(0, dtype=np.int64), np.empty(0)))
            continue
        rows, inverse = np.unique(np.concatenate(rows_parts), return_inverse=True)
        scores = np.bincount(inverse, weights=np.concatenate(score_parts))
        keep = allowed[position]
        if keep is not None:
            passing = np.isin(rows, keep)
            rows, scores = rows[passing], scores[passing]
        order = np.argsort(-scores, kind="stable")
        out.append((rows[order], scores[order]))
    return out
