"""The ``tiermem`` command: ``demo``, ``stats``, ``maintain``, ``reindex`` and ``deployment``.

    tiermem demo --agents 20 --steps 500     a small simulation on the embedded engine
    tiermem stats [--agent ID]               statistics of one agent or all
    tiermem maintain [--agent ID]            run maintenance now
    tiermem reindex [--agent ID]             rebuild the search indices from the tiers
    tiermem deployment [--adopt]             the deployment the key prefix and the LTM belong to
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from typing import Any, Sequence

from tqdm import tqdm

from memory.config import MemoryConfig
from memory import AgentMemoryAPI
from tiers.errors import MemoryAPIException

GOALS = ("gather", "trade", "explore", "rest")
MOODS = ("calm", "curious", "tired", "alert")


def _config(args: argparse.Namespace, **overrides: Any) -> MemoryConfig:
    base = MemoryConfig.from_file(args.config).as_dict() if args.config else {}
    base.update({k: v for k, v in overrides.items() if v is not None})
    if args.redis_url is not None:
        base["redis_url"] = args.redis_url
    if args.data_dir is not None:
        base["data_dir"] = args.data_dir
    if args.prefix is not None:
        base["key_prefix"] = args.prefix
    return MemoryConfig(**base)


def _state(rng: random.Random, agent: int, step: int, previous: dict[str, Any] | None) -> dict[str, Any]:
    x, y = previous["position"] if previous else (rng.randint(0, 50), rng.randint(0, 50))
    x, y = max(0, min(50, x + rng.randint(-1, 1))), max(0, min(50, y + rng.randint(-1, 1)))
    return {
        "position": [x, y],
        "health": round(rng.uniform(0.3, 1.0), 2),
        "energy": round(rng.uniform(0, 100), 1),
        "inventory": {"wood": rng.randint(0, 9), "stone": rng.randint(0, 9), "food": rng.randint(0, 4)},
        "goal": rng.choice(GOALS),
        "mood": rng.choice(MOODS),
        "step": step,
    }


def demo(args: argparse.Namespace) -> int:
    stm_limit = max(10, args.steps // 5)
    config = _config(
        args,
        cleanup_interval=max(10, args.steps // 20),
        stm_config={"memory_limit": stm_limit},
        im_config={"memory_limit": stm_limit * 2},
        ltm_config={"dictionary_samples": 200},
    )
    rng = random.Random(args.seed)
    agents = [f"agent-{i}" for i in range(args.agents)]
    states: dict[str, dict[str, Any]] = {}
    with AgentMemoryAPI(config) as memory:
        print(f"tiermem demo: {args.agents} agents x {args.steps} steps, Redis mode: {memory.mode}")
        for agent in agents:
            memory.clear_agent_memory(agent)
        started = time.perf_counter()
        for step in tqdm(range(args.steps), desc="simulating", unit="step", file=sys.stdout):
            batch = []
            for i, agent in enumerate(agents):
                states[agent] = _state(rng, i, step, states.get(agent))
                batch.append({"agent_id": agent, "data": states[agent], "step_number": step,
                              "priority": round(rng.random(), 2)})
                if rng.random() < 0.2:
                    action = {"action_type": rng.choice(GOALS), "outcome": rng.choice(["success", "failure"]),
                              "items": {"wood": rng.randint(0, 3)}}
                    batch.append({"agent_id": agent, "data": action, "step_number": step, "memory_type": "action"})
            memory.store_many(batch)
        stored = time.perf_counter() - started
        report = memory.force_memory_maintenance()
        print(f"stored in {stored:.2f}s; maintenance moved {report.moved} memories in {report.seconds:.2f}s "
              f"(STM->IM {report.stm_to_im}, IM->LTM {report.im_to_ltm}, LTM->IM {report.ltm_to_im})")
        agent = agents[0]
        window = memory.retrieve_by_time_range(agent, 0, min(9, args.steps - 1))
        print(f"\n{agent}, steps 0-9: {len(window)} memories from tiers {sorted({m['tier'] for m in window})}")
        wins = memory.retrieve_by_attributes(agent, {"outcome": "success"}, memory_type="action")
        print(f"{agent}: {len(wins)} successful actions")
        recent = memory.get_memory_space(agent).retrieve_recent_states(count=3)
        print(f"{agent}: newest steps {[m['step_number'] for m in recent]}")
        top = memory.retrieve_most_important(agent, k=3)
        print(f"{agent}: most important {[(m['step_number'], m['metadata']['importance_score']) for m in top]}")
        now = memory.get_memory_space(agent).retrieve_recent_states(count=1)[0]["contents"]
        alike = memory.retrieve_similar_states(agent, now, k=3)
        print(f"{agent}: states most like the last one {[(m['step_number'], m['tier'], round(m['similarity_score'], 3)) for m in alike]}")
        here = memory.retrieve_by_location(agent, now["position"], radius=2.0)
        print(f"{agent}: {len(here)} memories within 2 of {now['position']}, "
              f"nearest steps {[m['step_number'] for m in here[:5]]}")
        stats = memory.get_memory_statistics()
        print("\nstatistics:")
        print(json.dumps({k: stats[k] for k in ("mode", "agents", "total_memories", "tiers",
                                                 "memory_type_distribution", "importance", "cache_hit_rate")},
                         indent=2))
    return 0


def stats(args: argparse.Namespace) -> int:
    with AgentMemoryAPI(_config(args)) as memory:
        print(json.dumps(memory.get_memory_statistics(args.agent), indent=2, default=str))
    return 0


def maintain(args: argparse.Namespace) -> int:
    with AgentMemoryAPI(_config(args)) as memory:
        print(json.dumps(memory.force_memory_maintenance(args.agent).as_dict(), indent=2))
    return 0


def reindex(args: argparse.Namespace) -> int:
    """Rebuild the search indices from the tiers and say how much each tier indexed."""
    with AgentMemoryAPI(_config(args)) as memory:
        agents = [args.agent] if args.agent else memory.list_agents()
        report = {agent: memory.rebuild_indices(agent) for agent in agents}
        print(json.dumps({"agents": len(report), "memories_indexed": sum(report.values()), "by_agent": report}, indent=2))
    return 0


def deployment(args: argparse.Namespace) -> int:
    """Show the deployment this configuration binds; ``--adopt`` binds the key prefix to this
    LTM when Redis names another deployment whose LTM is lost for good."""
    with AgentMemoryAPI(_config(args), adopt_deployment=args.adopt) as memory:
        print(json.dumps(memory.deployment, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiermem", description="A tiered memory engine for agents.")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="a TOML settings file (see configs/)")
    common.add_argument("--redis-url", help='Redis URL; "" forces the embedded engine (default: auto-detect)')
    common.add_argument("--data-dir", help="directory for the SQLite LTM and the embedded snapshot")
    common.add_argument("--prefix", help="Redis key prefix")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("demo", parents=[common], help="simulate agents, maintain, query, show statistics")
    run.add_argument("--agents", type=int, default=20)
    run.add_argument("--steps", type=int, default=500)
    run.add_argument("--seed", type=int, default=7)
    run.set_defaults(handler=demo)
    show = commands.add_parser("stats", parents=[common], help="print memory statistics as JSON")
    show.add_argument("--agent", help="one agent id (default: all agents)")
    show.set_defaults(handler=stats)
    upkeep = commands.add_parser("maintain", parents=[common], help="run maintenance now")
    upkeep.add_argument("--agent", help="one agent id (default: all agents)")
    upkeep.set_defaults(handler=maintain)
    rebuild = commands.add_parser("reindex", parents=[common], help="rebuild the search indices from the tiers")
    rebuild.add_argument("--agent", help="one agent id (default: all agents)")
    rebuild.set_defaults(handler=reindex)
    bind = commands.add_parser("deployment", parents=[common],
                               help="show the deployment the key prefix and the LTM belong to")
    bind.add_argument("--adopt", action="store_true",
                      help="bind the key prefix to this LTM although Redis names another deployment "
                           "(its LTM is lost for good; what it held is gone)")
    bind.set_defaults(handler=deployment)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "agents", 1) < 1 or getattr(args, "steps", 1) < 1:
        print("tiermem: --agents and --steps must be at least 1", file=sys.stderr)
        return 2
    try:
        return args.handler(args)
    except MemoryAPIException as exc:
        print(f"tiermem: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
