"""The engine's internals. :class:`AgentMemoryAPI` (agent_memory) validates what a caller passes
and hands the work to its parts: ``Writes`` (the store path), ``Reads`` (cached, settled
cross-tier answers), ``Searches`` (the index-backed queries) and the ``Maintainer``. Import the
public names from :mod:`memory`."""
