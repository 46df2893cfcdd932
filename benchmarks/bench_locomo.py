"""tiermem hybrid text search on LoCoMo: evidence recall@10 of search_by_content beside MiniLM,
BM25 and their fusion, in the same run.

Run from the repository root (a Redis must answer at --redis-url; MiniLM loads offline):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_locomo.py                  # ~3 minutes
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_locomo.py --data DIR       # other conversations

A standalone script, not a test. LoCoMo (Maharana et al., ACL 2024) holds long multi-session
dialogues whose questions name their evidence turns, so retrieval is scored without any LLM:
a question's evidence recall@10 is the share of its evidence turns among the ten turns
retrieved for it, averaged over every question whose evidence lies in the conversation.

Each conversation is one agent: its turns are stored as interaction memories ({"speaker",
"text"}, the turn's order as its step) and maintenance spreads them over the three tiers (10%
STM, 30% IM, the rest LTM, at their reduced vector resolutions). tiermem answers each question
with search_by_content(k=10). Beside it, over the same texts (the text tiermem embeds, from
embeddings.text.contents_text) and the same questions:

  MiniLM        exact cosine between full-precision MiniLM vectors
  BM25          Okapi BM25 (k1 1.2, b 0.75) on lower-cased words
  fusion        reciprocal-rank fusion (k = 60) of the two full rankings

Targets: tiermem >= fusion, and >= MiniLM + 0.08. Nothing is flushed: keys live under a unique
prefix, deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import secrets
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from embeddings.text import TextEncoder, contents_text  # noqa: E402
from memory import AgentMemoryAPI, MemoryConfig  # noqa: E402

K = 10
RRF_K = 60
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "locomo"


def conversation(path: Path) -> tuple[list[tuple[str, dict[str, str]]], list[tuple[str, set[str]]]]:
    """(turns as (dia_id, contents), questions as (text, evidence ids)) of one LoCoMo file."""
    data = json.loads(path.read_text())
    sessions = sorted((int(key.split("_")[1]), value) for key, value in data.items()
                      if re.fullmatch(r"session_\d+", key) and isinstance(value, list))
    turns = [(turn["dia_id"], {"speaker": turn["speaker"], "text": turn["text"]})
             for _, session in sessions for turn in session if turn.get("text")]
    known = {dia_id for dia_id, _ in turns}
    questions = [(qa["question"], set(qa["evidence"]) & known) for qa in data["qa"] if set(qa.get("evidence", ())) & known]
    return turns, questions


def recall(retrieved: list[str], evidence: set[str]) -> float:
    return len(set(retrieved[:K]) & evidence) / len(evidence)


def bm25_ranking(documents: list[list[str]], query: list[str]) -> np.ndarray:
    n = len(documents)
    average = sum(map(len, documents)) / n
    counts = [Counter(doc) for doc in documents]
    scores = np.zeros(n)
    for word in set(query):
        frequency = sum(word in c for c in counts)
        if not frequency:
            continue
        idf = math.log(1 + (n - frequency + 0.5) / (frequency + 0.5))
        for i, c in enumerate(counts):
            tf = c.get(word, 0)
            if tf:
                scores[i] += idf * tf * 2.2 / (tf + 1.2 * (0.25 + 0.75 * len(documents[i]) / average))
    return np.argsort(-scores, kind="stable")


def tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def fused(rankings: list[np.ndarray], n: int) -> np.ndarray:
    scores = np.zeros(n)
    for ranking in rankings:
        scores[ranking] += 1.0 / (RRF_K + np.arange(1, n + 1))
    return np.argsort(-scores, kind="stable")


def run_conversation(args: argparse.Namespace, path: Path, encoder: TextEncoder, prefix: str,
                     data_dir: str) -> dict[str, list[float]]:
    turns, questions = conversation(path)
    n = len(turns)
    texts = [contents_text(contents) for _, contents in turns]
    agent = f"locomo-{path.stem}"
    config = MemoryConfig(redis_url=args.redis_url, key_prefix=prefix, data_dir=data_dir, cleanup_interval=10**9,
                          stm_config={"memory_limit": max(1, n // 10)}, im_config={"memory_limit": max(1, n * 3 // 10)})
    with AgentMemoryAPI(config) as api:
        ids = api.store_many([{"agent_id": agent, "step_number": step, "memory_type": "interaction", "data": contents}
                              for step, (_, contents) in enumerate(turns)])
        dia_of = {memory_id: dia_id for memory_id, (dia_id, _) in zip(ids, turns)}
        api.search_by_content(agent, "warm up: embeds every turn", k=1)  # the text vectors, before maintenance
        api.force_memory_maintenance(agent)
        placed = {name: tier["count"] for name, tier in api.get_memory_statistics(agent)["tiers"].items()}
        vectors = encoder.encode(texts)
        documents = [tokens(text) for text in texts]
        found: dict[str, list[float]] = {"tiermem": [], "MiniLM": [], "BM25": [], "fusion": []}
        started = time.perf_counter()
        for question, evidence in questions:
            answer = api.search_by_content(agent, question, k=K)
            found["tiermem"].append(recall([dia_of[m["memory_id"]] for m in answer], evidence))
        took = (time.perf_counter() - started) / len(questions)
        queries = encoder.encode([q for q, _ in questions])
        for (question, evidence), query in zip(questions, queries):
            dense = np.argsort(-(vectors @ query), kind="stable")
            keyword = bm25_ranking(documents, tokens(question))
            for name, ranking in (("MiniLM", dense), ("BM25", keyword), ("fusion", fused([dense, keyword], n))):
                found[name].append(recall([turns[i][0] for i in ranking[:K]], evidence))
        api.clear_agent_memory(agent)
    print(f"  {path.stem}: {n} turns (STM {placed['stm']}, IM {placed['im']}, LTM {placed['ltm']}), "
          f"{len(questions)} questions, search_by_content {1000 * took:.1f} ms each; "
          + ", ".join(f"{name} {np.mean(values):.3f}" for name, values in found.items()))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="a directory of LoCoMo conversation files")
    args = parser.parse_args(argv)
    files = sorted(args.data.glob("*.json"))
    if not files:
        print(f"no LoCoMo conversations (*.json) in {args.data}")
        return 1
    prefix = f"tmlocomo-{os.getpid()}-{secrets.token_hex(3)}"
    print("tiermem LoCoMo retrieval benchmark")
    print(f"python {sys.version.split()[0]}; nproc {os.cpu_count()}; {args.redis_url}; {len(files)} conversations; "
          f"evidence recall@{K}")
    encoder = TextEncoder()
    totals: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="tiermem-locomo-") as data_dir:
        for path in files:
            for name, values in run_conversation(args, path, encoder, prefix, data_dir).items():
                totals.setdefault(name, []).extend(values)
    means = {name: float(np.mean(values)) for name, values in totals.items()}
    print(f"all {len(totals['tiermem'])} questions: " + ", ".join(f"{name} {value:.3f}" for name, value in means.items()))
    checks = [("tiermem >= fusion", means["tiermem"] >= means["fusion"]),
              ("tiermem >= MiniLM + 0.08", means["tiermem"] >= means["MiniLM"] + 0.08)]
    for name, passed in checks:
        print(f"  {name}: {'PASS' if passed else 'FAIL'}")
    ok = all(passed for _, passed in checks)
    print(f"verdict: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
