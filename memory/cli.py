"""The ``tiermem`` command: look into a memory engine, maintain it, run a demo on it.

    tiermem demo [--agents N] [--steps N]    a small simulation, then queries and statistics
    tiermem stats [--agent ID] [--json]      counts, sizes and compression per tier, types, cache
    tiermem agents [--json]                  every agent, with its memories per tier
    tiermem show AGENT [--steps A:B] [--type T] [--limit N] [--vectors] [--json]
                                             an agent's memories in step order
    tiermem maintain [--agent ID]            run maintenance now (demote, promote, heal)
    tiermem reindex [--agent ID]             rebuild the search indices from the tiers
    tiermem export [--agent ID ...] [--vectors] [--tiers] > FILE
                                             memories as JSON Lines (a header, then one a line)
    tiermem import FILE [--tiers]            store an export's memories again (FILE - : stdin)
    tiermem deployment [--adopt]             the deployment the key prefix and the LTM belong to
    tiermem mcp [--tokens FILE] [--token TOKEN]
                                             speak MCP on stdin/stdout: the engine and its team memory
                                             as tools (protocol on stdout, logs on stderr)
    tiermem serve [--host H] [--port N] [--tokens FILE] [--max-body BYTES]
                                             the HTTP server: REST API (OpenAPI at /docs), team routes
    tiermem --version

Every command takes ``--config``, ``--redis-url``, ``--data-dir`` and ``--prefix`` (before or
after its name). Tables and results go to stdout; progress and start-up status go to stderr, and
only when stderr is a terminal. ``--json`` prints what the engine returned, for programs
(``show`` leaves the vectors out unless ``--vectors``).

Exit status: 0 done; 1 the engine refused or failed (one line on stderr, ``tiermem: error: ...``);
2 a usage error; 130 interrupted; 141 stdout closed early (``tiermem show a | head``).
``stats``, ``agents``, ``show``, ``export`` and ``deployment`` (without ``--adopt``) only read: on
the embedded engine they leave its snapshot file as they found it.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from tqdm import tqdm

from memory import (
    AgentMemoryAPI,
    InvalidInputError,
    MemoryAPIException,
    MemoryConfig,
    MemoryConfigException,
    MissingExtraError,
    RedisShortTermMemory,
)
from memory._engine import transfer
from memory.cli_text import agents_text, indexed_text, jsonable, memories_text, stats_text, summary_text

GOALS = ("gather", "trade", "explore", "rest")
MOODS = ("calm", "curious", "tired", "alert")
LAST_STEP = 2**53 - 1  # the largest step number the engine accepts


# -- version, configuration, the engine ---------------------------------------------------------
def package_version() -> str:
    """The installed package's version, else the one pyproject.toml beside the package names."""
    try:
        return metadata.version("tiermem")
    except metadata.PackageNotFoundError:
        pass
    import tomllib

    try:
        with open(Path(__file__).resolve().parent.parent / "pyproject.toml", "rb") as handle:
            return str(tomllib.load(handle)["project"]["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


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


def _interactive() -> bool:
    """Progress and status lines only for a person watching: stderr is a terminal."""
    isatty = getattr(sys.stderr, "isatty", None)
    return bool(isatty and isatty())


def _progress(items: Sequence[Any] | None, what: str, unit: str = "agent", leave: bool = False) -> Any:
    """A progress bar on stderr (a terminal only); ``items`` None: a counter of what is done."""
    return tqdm(items, desc=what, unit=unit, file=sys.stderr, leave=leave, disable=not _interactive())


def _each_agent(names: Sequence[str], what: str) -> Iterator[str]:
    """``names``, with a progress bar on stderr that names the agent at hand."""
    bar = _progress(names, what)
    for name in bar:
        bar.set_postfix_str(name)
        yield name


def _where(config: MemoryConfig) -> str:
    url = config.redis_url_option()
    if url is None:
        url = os.environ.get("REDIS_URL")
    if url == "":
        return f"starting the embedded engine in {config.data_dir}..."
    if url is None:
        return "opening the memory engine (Redis on 127.0.0.1:6379, else the embedded engine)..."
    return "connecting to Redis..."


@contextmanager
def opened(config: MemoryConfig, **options: Any) -> Iterator[AgentMemoryAPI]:
    """The engine for ``config``, with a status line on stderr while it starts (a terminal only)."""
    status = _interactive()
    if status:
        sys.stderr.write(f"tiermem: {_where(config)}")
        sys.stderr.flush()
    try:
        memory = AgentMemoryAPI(config, **options)
    finally:
        if status:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
    with memory:
        yield memory


def _json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=jsonable))


# -- argument types -----------------------------------------------------------------------------
def whole_number(least: int) -> Callable[[str], int]:
    """An argparse type: an int of at least ``least``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"must be at least {least}, got {value}")
        return value

    return parse


def port(text: str) -> int:
    """An argparse type: a TCP port, 0 (any free one) to 65535."""
    value = whole_number(0)(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"a port is at most 65535, got {value}")
    return value


def steps(text: str) -> tuple[int, int]:
    """``A:B`` (A to B, both included), ``A:`` (from A on), ``:B`` (up to B) or ``:`` (all)."""
    lo, colon, hi = text.partition(":")
    usage = f"expected A:B, A: or :B (steps A to B, both included), got {text!r}"
    if not colon:
        raise argparse.ArgumentTypeError(usage)
    try:
        start = int(lo) if lo.strip() else 0
        end = int(hi) if hi.strip() else LAST_STEP
    except ValueError:
        raise argparse.ArgumentTypeError(usage) from None
    if start < 0 or end < 0:
        raise argparse.ArgumentTypeError(f"steps are 0 or more, got {text!r}")
    if start > end:
        raise argparse.ArgumentTypeError(f"the first step comes after the last in {text!r}")
    return start, end


# -- the commands -------------------------------------------------------------------------------
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
    """Simulate agents, run maintenance, query every way, print statistics."""
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
    with opened(config) as memory:
        print(f"tiermem demo: {args.agents} agents x {args.steps} steps, Redis mode: {memory.mode}")
        for agent in agents:
            memory.clear_agent_memory(agent)
        started = time.perf_counter()
        for step in _progress(range(args.steps), "simulating", unit="step", leave=True):
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
        alike_shown = [(m["step_number"], m["tier"], round(m["similarity_score"], 3)) for m in alike]
        print(f"{agent}: states most like the last one {alike_shown}")
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
    """Print the engine's statistics, of one agent or all, as tables or as JSON."""
    with opened(_config(args)) as memory:
        found = memory.get_memory_statistics(args.agent)
    if args.json:
        _json(found)
    else:
        print(stats_text(found))
    return 0


def agents(args: argparse.Namespace) -> int:
    """List every agent with its memories per tier."""
    with opened(_config(args)) as memory:
        rows = []
        for agent in _each_agent(sorted(memory.list_agents()), "counting"):
            tiers = memory.get_memory_statistics(agent)["tiers"]
            counts = {tier: found["count"] for tier, found in tiers.items()}
            rows.append({"agent_id": agent, **counts, "total": sum(counts.values())})
    if args.json:
        _json(rows)
    else:
        print(agents_text(rows))
    return 0


def show(args: argparse.Namespace) -> int:
    """Print an agent's memories in step order: a table, or JSON."""
    start, end = args.steps
    with opened(_config(args)) as memory:
        found = memory.retrieve_by_time_range(args.agent, start, end, memory_type=args.type, limit=args.limit)
    if getattr(found, "failed_tiers", ()):
        print(f"tiermem: warning: answered without {', '.join(found.failed_tiers)} (they did not respond)",
              file=sys.stderr)
    memories = [dict(m) if args.vectors else {k: v for k, v in m.items() if k != "embeddings"} for m in found]
    if args.json:
        _json(memories)
        return 0
    if not memories:
        kind = f" of type {args.type}" if args.type else ""
        print(f"tiermem: {args.agent} has no memories{kind} in {_span(start, end)}", file=sys.stderr)
        return 0
    print(memories_text(memories, args.vectors, shutil.get_terminal_size((120, 24)).columns))
    return 0


def _span(start: int, end: int) -> str:
    if end == LAST_STEP:
        return f"steps {start} on" if start else "any step"
    return f"steps {start}-{end}"


def maintain(args: argparse.Namespace) -> int:
    """Run maintenance now, as the engine does (all agents: those with work, by its maintenance
    workers); print what moved."""
    with opened(_config(args)) as memory:
        total = 1 if args.agent else len(memory.list_agents())
        with _progress(range(total), "maintaining") as bar:
            lock = threading.Lock()

            def done(agent: str) -> None:
                with lock:
                    bar.set_postfix_str(agent)
                    bar.update()

            report = memory.force_memory_maintenance(args.agent, progress=done)
    if args.json:
        _json(report.as_dict())
    else:
        print(summary_text(report.as_dict()))
    return 0


def reindex(args: argparse.Namespace) -> int:
    """Rebuild the search indices from the tiers and say how much each agent indexed."""
    with opened(_config(args)) as memory:
        names = [args.agent] if args.agent else memory.list_agents()
        report = {agent: memory.rebuild_indices(agent) for agent in _each_agent(names, "reindexing")}
    if args.json:
        _json({"agents": len(report), "memories_indexed": sum(report.values()), "by_agent": report})
    else:
        print(indexed_text(report))
    return 0


def export(args: argparse.Namespace) -> int:
    """Write memories to stdout as JSON Lines: the format's header, then one memory a line."""
    with opened(_config(args)) as memory:
        names = args.agent or memory.list_agents()
        print(json.dumps(transfer.header()))
        with _progress(None, "exporting", unit="memory") as bar:
            for item in memory.export_memories(names, vectors=args.vectors, tiers=args.tiers):
                print(json.dumps(item))
                bar.update()
    return 0


def import_file(args: argparse.Namespace) -> int:
    """Store the memories of an export file again, as they were; those held already are skipped."""
    with opened(_config(args)) as memory, _lines(args.file) as lines:
        with _progress(None, "importing", unit="memory") as bar:
            report = memory.import_memories(_json_lines(lines), tiers=args.tiers,
                                            progress=lambda done: bar.update(done.read - bar.n))
    if args.json:
        _json(report.as_dict())
    else:
        print(summary_text(report.as_dict()))
    return 0


@contextmanager
def _lines(path: str) -> Iterator[Any]:
    if path == "-":
        yield sys.stdin
        return
    try:
        handle = open(path, encoding="utf-8")  # noqa: SIM115  (closed below)
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from None
    with handle:
        yield handle


def _json_lines(lines: Any) -> Iterator[Any]:
    for number, line in enumerate(lines, 1):
        try:
            yield json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"line {number} is not JSON: {exc}") from None


def deployment(args: argparse.Namespace) -> int:
    """Show the deployment this configuration binds; ``--adopt`` binds the key prefix to this
    LTM when Redis names another deployment whose LTM is lost for good."""
    with opened(_config(args), adopt_deployment=args.adopt) as memory:
        found = memory.deployment
    if args.json:
        _json(found)
    else:
        print(summary_text(found))
    return 0


def mcp(args: argparse.Namespace) -> int:
    """Serve the MCP tools on stdin/stdout until the client closes stdin."""
    try:
        from memory.server import auth
        from memory.server.app import team_beside
        from memory.server.mcp import serve_stdio
    except ImportError as exc:
        raise MissingExtraError("server", f"tiermem mcp needs the MCP SDK ({exc})") from exc
    principal = auth.LOCAL
    token = args.token if args.token is not None else os.environ.get("TIERMEM_TOKEN")
    if token:
        tokens = auth.TokenTable.load(args.tokens)
        if not tokens.configured:
            raise MemoryConfigException("a token was given (--token or TIERMEM_TOKEN) but no tokens are configured "
                                        f"(--tokens FILE or {auth.TOKENS_VARIABLE})")
        found = tokens.lookup(token)
        if found is None:
            raise MemoryConfigException("the token given (--token or TIERMEM_TOKEN) is not one of the configured tokens")
        principal = found
    config = _config(args)
    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)  # opening and closing run to their end
    try:
        with opened(config) as memory, team_beside(memory) as team:
            signal.signal(signal.SIGTERM, functools.partial(_terminated, memory, team))
            try:
                serve_stdio(memory, team, principal)
            finally:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def serve(args: argparse.Namespace) -> int:
    """Serve the engine and its team's shared memory over HTTP (docs/server.md) until interrupted."""
    try:
        import uvicorn

        from memory.server import auth
        from memory.server.app import create_app, team_beside
    except ImportError as exc:
        raise MissingExtraError("server", f"tiermem serve needs {exc.name}") from None
    tokens = auth.TokenTable.load(args.tokens)
    auth.check_bind(args.host, tokens)
    # uvicorn stops on SIGTERM, then raises it again: stop here instead, so the engine is closed
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        with opened(_config(args)) as memory, team_beside(memory) as team:
            app = create_app(memory, team, tokens=tokens, max_body_bytes=args.max_body, host=args.host)
            uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    except _Stop:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _terminated(memory: AgentMemoryAPI, team: RedisShortTermMemory, signum: int, frame: Any) -> None:
    """An MCP client ends its server with SIGTERM when closing stdin was not enough. Close the memories
    all the same (the embedded engine snapshots what was stored), then leave at once: the thread reading
    stdin cannot be stopped, and an orderly exit would wait for it."""
    team.close()
    memory.close()
    sys.stderr.flush()
    os._exit(128 + signum)


class _Stop(Exception):
    """SIGTERM came: the server has stopped."""


def _stopped(signum: int, frame: Any) -> None:
    raise _Stop


# -- the parser ---------------------------------------------------------------------------------
EPILOG = """\
environment:
  REDIS_URL      the Redis to use when --redis-url and the config name none ("" forces the embedded engine)
  TIERMEM_TOKENS serve: the bearer tokens (JSON) when --tokens names no file

exit status:
  0 done, 1 the engine refused or failed, 2 usage error, 130 interrupted, 141 output closed early
"""


def _common_options(parser: argparse.ArgumentParser, default: Any) -> None:
    """The connection options, on the main parser (``default`` None) and on every command
    (``default`` SUPPRESS, so a value given before the command's name is kept)."""
    group = parser.add_argument_group("engine options")
    group.add_argument("--config", metavar="FILE", default=default, help="a TOML settings file (see configs/)")
    group.add_argument("--redis-url", metavar="URL", default=default,
                       help='the Redis to use; "" forces the embedded engine (default: $REDIS_URL, '
                            "else 127.0.0.1:6379 if it answers, else embedded)")
    group.add_argument("--data-dir", metavar="DIR", default=default,
                       help="directory of the SQLite LTM and the embedded engine's snapshot (default: .tiermem)")
    group.add_argument("--prefix", metavar="PREFIX", default=default,
                       help="the Redis key prefix, one deployment each (default: tiermem)")


def _command(commands: Any, name: str, handler: Any, summary: str, description: str) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=summary, description=description, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    _common_options(parser, argparse.SUPPRESS)
    parser.set_defaults(handler=handler)
    return parser


def _json_option(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON instead of a table")


def _agent_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--agent", metavar="ID", help="one agent (default: every agent)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tiermem", description="A tiered memory engine for agents: look into "
                                     "one, maintain it, or run a demo on it.", epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}",
                        help="print the version and exit")
    _common_options(parser, None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = _command(commands, "demo", demo, "simulate agents, maintain, query, show statistics",
                   "Simulate agents that store a state every step (and now and then an action), run\n"
                   "maintenance, query the memories every way the engine can, and print statistics.\n"
                   "It clears the memories of the agents it simulates (agent-0, agent-1, ...) first.")
    run.add_argument("--agents", type=whole_number(1), default=20, metavar="N", help="agents to simulate (default: 20)")
    run.add_argument("--steps", type=whole_number(1), default=500, metavar="N", help="steps each agent lives (default: 500)")
    run.add_argument("--seed", type=int, default=7, help="random seed, for a run you can repeat (default: 7)")

    numbers = _command(commands, "stats", stats, "statistics per tier, type, cache and index",
                       "Print the engine's statistics, of one agent or of all: memories, bytes and compression\n"
                       "per tier, memory types, importance, the result cache, the search indices, the deployment.")
    _agent_option(numbers)
    _json_option(numbers, "the statistics")

    listing = _command(commands, "agents", agents, "list the agents with their memories per tier",
                       "List every agent that holds memories under the key prefix, with how many each tier\n"
                       "(STM, IM, LTM) holds.")
    _json_option(listing, "the list")

    memories = _command(commands, "show", show, "show an agent's memories",
                        "Print an agent's memories in step order, from every tier: step, type, tier, importance\n"
                        "and a one-line preview of the contents (--json: all of each memory).")
    memories.add_argument("agent", metavar="AGENT", help="the agent whose memories to show")
    memories.add_argument("--steps", type=steps, default=(0, LAST_STEP), metavar="A:B",
                          help="steps A to B, both included; A: from A on, :B up to B (default: all)")
    memories.add_argument("--type", metavar="TYPE", help="only memories of this type: state, action or interaction")
    memories.add_argument("--limit", type=whole_number(0), metavar="N", help="at most N memories, the earliest steps first")
    memories.add_argument("--vectors", action="store_true",
                          help="include the vectors (a column in the table, the values in JSON)")
    _json_option(memories, "the memories (their full contents and metadata)")

    upkeep = _command(commands, "maintain", maintain, "run maintenance now",
                      "Run maintenance now: demote from STM to IM and from IM to LTM by capacity and age,\n"
                      "promote often-read LTM memories, finish interrupted moves. Without --agent, every\n"
                      "agent with work, by the engine's maintenance workers. Prints what moved.")
    _agent_option(upkeep)
    _json_option(upkeep, "what moved")

    rebuild = _command(commands, "reindex", reindex, "rebuild the search indices from the tiers",
                       "Rebuild every agent's search indices from the memories the tiers hold, and print\n"
                       "how many each agent indexed.")
    _agent_option(rebuild)
    _json_option(rebuild, "what was indexed")

    dump = _command(commands, "export", export, "write memories as JSON Lines to stdout",
                    "Write memories to stdout as JSON Lines: a header line, then one memory a line (its id,\n"
                    "step, type, creation time, importance, read count and last read, and its contents),\n"
                    "agent by agent in step order. `tiermem import` stores them again as they were.")
    dump.add_argument("--agent", action="append", metavar="ID", help="this agent (repeat for more; default: every agent)")
    dump.add_argument("--vectors", action="store_true", help="with each memory's vectors")
    dump.add_argument("--tiers", action="store_true", help="with the tier that holds each memory")

    load = _command(commands, "import", import_file, "store the memories of an export file",
                    "Store the memories of an export file (FILE, or - for stdin) again as they were, in\n"
                    "STM (maintenance moves them down), or with --tiers each in the tier it was exported\n"
                    "from. A memory some tier holds already is skipped: importing twice stores it once.")
    load.add_argument("file", metavar="FILE", help="the export file, or - for stdin")
    load.add_argument("--tiers", action="store_true", help="each memory back in the tier the export names")
    _json_option(load, "what was imported")

    bind = _command(commands, "deployment", deployment, "show the deployment the key prefix and the LTM belong to",
                    "Print the deployment (an id recorded in Redis and in the LTM) that this key prefix and\n"
                    "this LTM belong to. An engine that finds them bound to different deployments\n"
                    "refuses to start; --adopt rebinds them when the other LTM is lost for good.")
    bind.add_argument("--adopt", action="store_true",
                      help="bind the key prefix to this LTM although Redis names another deployment "
                           "(its LTM is lost for good; what it held is gone)")
    _json_option(bind, "the deployment")

    stdio = _command(commands, "mcp", mcp, "speak MCP on stdin/stdout (for an LLM client)",
                     "Serve tiermem's MCP tools (store_memory, search_memories, ..., claim_task, send_signal,\n"
                     "find_patterns) on stdin and stdout, for an MCP client that starts this command. Each\n"
                     "call is made as the local steward, or as the token --token (or $TIERMEM_TOKEN) names\n"
                     "in the tokens of --tokens FILE (or $TIERMEM_TOKENS). The protocol alone is on stdout.")
    stdio.add_argument("--tokens", metavar="FILE",
                       help="the tokens file (a JSON list of {token, tier, agent?, team?}; default: $TIERMEM_TOKENS)")
    stdio.add_argument("--token", metavar="TOKEN",
                       help="act as this token's principal (default: $TIERMEM_TOKEN, else the local steward)")

    server = _command(commands, "serve", serve, "serve the REST API over HTTP",
                      "Serve the engine over HTTP: the REST API under /v1 (with the team routes), its OpenAPI\n"
                      "document at /openapi.json and /docs, until interrupted. Callers name themselves with\n"
                      "bearer tokens (--tokens FILE, else $TIERMEM_TOKENS); without tokens every caller may do\n"
                      "anything, so the server then listens on loopback only. See docs/server.md.")
    server.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    server.add_argument("--port", type=port, default=8000, help="the port to listen on, 0 for any free one (default: 8000)")
    server.add_argument("--tokens", metavar="FILE", help="a JSON file of bearer tokens (default: $TIERMEM_TOKENS)")
    server.add_argument("--max-body", type=whole_number(0), default=1 << 20, metavar="BYTES",
                        help="the largest request body taken, in bytes (default: 1048576)")
    return parser


# -- running ------------------------------------------------------------------------------------
def _stdout_gone() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush finds nowhere to fail
    (the Python docs' note on SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a file descriptor (captured)
        pass
    finally:
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (see the module docstring)."""
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")  # contents that the terminal's encoding lacks
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help, --version, a usage error
            sys.stdout.flush()
            return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 2
        status = args.handler(args)
        sys.stdout.flush()
        return status
    except MemoryAPIException as exc:
        message = " ".join(str(exc).split("\n")) or type(exc).__name__
        print(f"tiermem: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _stdout_gone()
        return 141


if __name__ == "__main__":
    sys.exit(main())
