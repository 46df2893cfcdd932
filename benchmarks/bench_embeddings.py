"""Embedding costs: the state encoder (runs inline on every store) and MiniLM text throughput.

    .venv/bin/python benchmarks/bench_embeddings.py            # ~1-2 minutes on 2 cores

State encoder: microseconds per encode of the benchmark simulation's ~15-field state
(bench_engine.SimAgent.state), best of 7 runs over 2,000 states and the median run, in wall time
and in CPU time (what an encode costs this process whatever else runs); target <= 30 us.
Text: model load time (torch import included), sentences/s batched (batch 64) and one by one,
and the single-text latency p50/p99. The machine's load average is printed with the figures,
since other work on a shared 2-core machine moves them by 2x.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
import timeit
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import SimAgent  # noqa: E402
from bench_resolution import sentences  # noqa: E402
from embeddings.state import StateEncoder  # noqa: E402

STATES = 2_000
BATCHED_TEXTS = 512
SINGLE_TEXTS = 64


def bench_state_encoder() -> None:
    agent = SimAgent(0, seed=1)
    states = [agent.state(step) for step in range(STATES)]
    encoder = StateEncoder()
    encoder.encode_many(states)  # warm the slot cache, as a long-running engine has it
    runs = timeit.repeat(lambda: encoder.encode_many(states), number=1, repeat=7)
    per_state = [run / STATES * 1e6 for run in runs]
    cpu = []
    for _ in range(7):  # CPU time: what an encode costs this process, whatever else runs
        started = time.process_time()
        encoder.encode_many(states)
        cpu.append((time.process_time() - started) / STATES * 1e6)
    cold = StateEncoder()
    started = time.perf_counter()
    cold.encode(states[0])
    cold_us = (time.perf_counter() - started) * 1e6
    print(f"state encoder, dim {encoder.dim}, {len(states[0])}-key states: "
          f"best {min(per_state):.1f} us, median {statistics.median(per_state):.1f} us wall, "
          f"best {min(cpu):.1f} us CPU per encode (target <= 30 us); "
          f"first encode with a cold cache {cold_us:.0f} us")


def bench_text_encoder() -> None:
    from embeddings.text import TextEncoder

    texts = sentences(BATCHED_TEXTS + SINGLE_TEXTS, seed=11)
    encoder = TextEncoder(batch_size=64)
    started = time.perf_counter()
    dim = encoder.dim
    load_s = time.perf_counter() - started
    encoder.encode(texts[:64])  # warm-up: first batches pay one-off allocation costs
    started = time.perf_counter()
    encoder.encode(texts[:BATCHED_TEXTS])
    batched = BATCHED_TEXTS / (time.perf_counter() - started)
    singles = []
    for text in texts[BATCHED_TEXTS:]:
        started = time.perf_counter()
        encoder.encode([text])
        singles.append(time.perf_counter() - started)
    p50, p99 = np.percentile(np.array(singles) * 1e3, [50, 99])
    import torch

    print(f"text encoder all-MiniLM-L6-v2 ({dim}-d), torch {torch.__version__} on "
          f"{torch.get_num_threads()} threads: load {load_s:.1f} s")
    print(f"  batched (64 per batch): {batched:.0f} sentences/s ({1e3 / batched:.1f} ms per text)")
    print(f"  one by one: {1 / statistics.mean(singles):.0f} sentences/s, "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms per text")


def main() -> None:
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}, "
          f"{os.cpu_count()} CPUs")
    bench_state_encoder()
    bench_text_encoder()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
