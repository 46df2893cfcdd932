"""The engine's public names under the import path the Agent Memory API document uses:
``from memory.api import AgentMemoryAPI``. The same objects as :mod:`memory`'s."""

from memory import _ENGINE_NAMES
from memory import *  # noqa: F403 - this module is the engine part of the facade, by name

__all__ = list(_ENGINE_NAMES)
