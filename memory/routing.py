"""Which process serves an agent, when agents are split over several processes.

Every process of a deployment can answer for every agent, but each keeps the search indices of
the agents it queried (within ``search_config.index_agents`` and ``index_memory_mb``), so a
workload whose agents are split over processes keeps each agent's indices in one process only.
The split is a stable hash of the agent id (CRC32, as the agent registry's shards): the same in
every process, every run and every Python, so routers and workers agree without talking.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

from memory import validation


def process_for_agent(agent_id: str, processes: int) -> int:
    """The process (0 .. processes - 1) that serves ``agent_id``."""
    validation.agent_id(agent_id)
    validation.count(processes, "processes", minimum=1)
    return zlib.crc32(agent_id.encode()) % processes


def agents_for_process(agent_ids: Iterable[str], process: int, processes: int) -> list[str]:
    """The agents of ``agent_ids`` that process ``process`` of ``processes`` serves, in order."""
    validation.count(processes, "processes", minimum=1)
    validation.count(process, "process", maximum=processes - 1)
    return [agent_id for agent_id in agent_ids if process_for_agent(agent_id, processes) == process]
