"""What every coordination store on one connection shares: the client, the key schema, the Lua
scripts (tiers/lua/team/) and, on the embedded engine, the durable copy.

A write whose keys must survive an embedded restart goes through :meth:`Context.durably` (plain
commands, then a read-back of the keys) or :meth:`Context.durable_script` (one script call that
also reads back what it touched). On a Redis server both are the write alone.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from tiers.coordination.durable import DurableMirror, Item
from tiers.coordination.keys import TeamKeys
from tiers.scripts import Script, lua_source, send_writes

T = TypeVar("T")


class TeamScript(Script):
    """A Script loaded into Redis before its first call (as the engine's own are when it opens),
    so that call runs rather than answering NOSCRIPT and going out again: the one a lost reply
    hides is then always a call that ran."""

    _ready = False

    def __call__(self, keys: Sequence[Any] = (), args: Sequence[Any] = (), client: Any = None) -> Any:
        if not self._ready:
            self.client.script_load(self.source)
            self._ready = True
        return super().__call__(keys, args, client)


def hash_reply(reply: Any) -> dict[Any, Any]:
    """An HGETALL reply as a dict: redis-py parses it, except inside a Redis Cluster MULTI (a
    ClusterPipeline transaction applies no response callbacks), which leaves the flat list."""
    if isinstance(reply, dict):
        return reply
    return dict(zip(reply[::2], reply[1::2]))


def team_source(*names: str) -> str:
    """The text of tiers/lua/team/<name>.lua for each name, joined (helpers first)."""
    return "\n".join(lua_source(f"team/{name}") for name in names)


class Context:
    """``wait_replicas``: replicas that must hold a write before it is answered (Redis WAIT, as
    the engine's ``wait_replicas``); reads never wait."""

    def __init__(self, client: Any, keys: TeamKeys, mirror: DurableMirror | None = None, wait_replicas: int = 0):
        self.client = client
        self.keys = keys
        self.mirror = mirror
        self.wait_replicas = wait_replicas
        self._scripts: dict[tuple[str, bool, bool], TeamScript] = {}

    def script(self, source: str, once: bool = False, read: bool = False) -> TeamScript:
        """A registered Lua script (called by SHA, reloaded if Redis lost it), built once per source.
        ``once``: it takes effect once however often it is sent (tiers/scripts.py); ``read``: it
        writes nothing, so it never waits for replicas."""
        script = self._scripts.get((source, once, read))
        if script is None:
            wait = 0 if read else self.wait_replicas
            script = self._scripts[source, once, read] = TeamScript(self.client, source, once=once, wait=wait)
        return script

    def write(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Plain write commands that are harmless to repeat, sent in order and answered once
        ``wait_replicas`` replicas hold them."""
        return send_writes(self.client, commands, self.wait_replicas)

    def durably(self, items: Sequence[Item], write: Callable[[], T]) -> T:
        """Run a Redis write; on the embedded engine, then copy ``items`` (the keys it touched)
        into the durable copy, under its lock."""
        if self.mirror is None:
            return write()
        with self.mirror.writing(items):
            return write()

    def durable_script(
        self, source: str, once: bool = False
    ) -> Callable[[Sequence[Any], Sequence[Any], Sequence[Item]], Any]:
        """A write script whose keys must survive an embedded restart, called as ``run(keys, args,
        items)``; on the embedded engine the same call reads ``items`` back for the durable copy (no
        reply is lost in the process, so ``once`` applies to a Redis server only)."""
        mirror = self.mirror
        if mirror is None:
            script = self.script(source, once)
            return lambda keys, args, items: script(keys=keys, args=args)
        return lambda keys, args, items: mirror.run(source, keys, args, items)
