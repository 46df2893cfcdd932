"""The Lua scripts, loaded once per connection and called by SHA.

Calls go through EVALSHA directly, not redis-py's ``Script`` objects: those make every pipeline
ask ``SCRIPT EXISTS`` first, an extra round trip per query. When Redis answers NOSCRIPT (it was
restarted or flushed) the scripts are loaded again and the call is retried once. A script runs
atomically, so a retried call never applies twice.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Any

from redis.exceptions import NoScriptError

NAMES = ("put", "delete", "move", "range", "get", "touch", "set_importance", "release", "tier_stats")


def _source(name: str) -> str:
    folder = resources.files("tiers") / "lua"
    return (folder / "lib.lua").read_text() + "\n" + (folder / f"{name}.lua").read_text()


class Scripts:
    def __init__(self, client: Any):
        self.client = client
        self.sources = {name: _source(name) for name in NAMES}
        self.shas = {name: hashlib.sha1(src.encode()).hexdigest() for name, src in self.sources.items()}
        self._loaded = False

    def load(self) -> None:
        for src in self.sources.values():
            self.client.script_load(src)
        self._loaded = True

    def call(self, name: str, keys: list[str], args: list[Any]) -> Any:
        if not self._loaded:
            self.load()
        try:
            return self.client.evalsha(self.shas[name], len(keys), *keys, *args)
        except NoScriptError:
            self.load()
            return self.client.evalsha(self.shas[name], len(keys), *keys, *args)

    def queue(self, pipe: Any, name: str, keys: list[str], args: list[Any]) -> None:
        """Add a call to a pipeline; the caller runs it through :meth:`execute`."""
        pipe.evalsha(self.shas[name], len(keys), *keys, *args)

    def execute(self, pipe: Any) -> list[Any]:
        """Run a pipeline of script calls, loading the scripts first if Redis lost them.

        Only read pipelines go through here: re-running them after NOSCRIPT is harmless.
        """
        if not self._loaded:
            self.load()
        commands = list(pipe.command_stack)
        try:
            return pipe.execute()
        except NoScriptError:
            self.load()
            pipe.command_stack = commands
            return pipe.execute()
