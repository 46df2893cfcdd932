"""Text vectors, off the store path: stores queue memories, this embeds them in batches.

The text model costs milliseconds per memory, about a hundred times a whole store, so a store
only adds the memory to the agent's queue (in the same script call). The queue is emptied here:
before every content query for that agent (so the query sees every memory stored before it
began, from any process), and, with ``text_embedding="background"``, by a thread that follows
this process's stores. Vectors are written into the record wherever it lives by then, at that
tier's resolution, with a compare-and-set so a record that moved meanwhile is found again.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any, cast

import numpy as np

from embeddings.resolution import reduce
from embeddings.text import TextEncoder, contents_text
from memory._engine.derive import TIER_RESOLUTION
from memory.config import SearchConfig
from tiers.async_bridge import offload
from tiers.codec import with_embeddings
from tiers.errors import MemoryConfigException
from tiers.tierset import TierSet

log = logging.getLogger(__name__)

BATCH = 64  # memories embedded per model call


class TextEmbedder:
    def __init__(self, tiers: TierSet, config: SearchConfig):
        self.t = tiers
        self.config = config
        self._encoder: TextEncoder | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._agents: set[str] = set()
        self._stopped = False
        self._thread: threading.Thread | None = None
        if config.text_embedding == "background":
            self._thread = threading.Thread(target=self._follow, name="tiermem-text-embedder", daemon=True)
            self._thread.start()

    @property
    def encoder(self) -> TextEncoder:
        with self._lock:
            if self._encoder is None:
                self._encoder = TextEncoder(self.config.text_model)
            return self._encoder

    def encode_query(self, text: str) -> np.ndarray:
        return self._encode([text])[0]

    def _encode(self, texts: list[str]) -> np.ndarray:
        """The model's vectors; a model that fails or answers in the wrong shape is the
        configuration's problem, said as such (MemoryConfigException)."""
        try:
            return offload(self.encoder.encode, texts)  # the async API's event loop runs on meanwhile
        except (ValueError, TypeError, OSError, RuntimeError) as exc:  # the caller's model, or one not on disk
            raise MemoryConfigException(f"search_config.text_model could not embed text: {exc}") from exc

    def stored(self, agent_ids: Any) -> None:
        """Called after stores: the background thread catches these agents up."""
        if self._thread is not None:
            self._agents.update(agent_ids)
            self._wake.set()

    def catch_up(self, agent_id: str) -> int:
        """Embed every memory of the agent still waiting (Redis's queue, then LTM's); returns
        how many were embedded."""
        done, tried = 0, set[str]()
        while True:
            ids = self.t.pending_text(agent_id, BATCH) or self.t.ltm.text_pending(agent_id, BATCH)
            if not ids or tried.issuperset(ids):  # nothing left, or only what could not be written
                return done
            tried.update(ids)
            done += self._embed(agent_id, ids)

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- one batch ----------------------------------------------------------------------------
    def _embed(self, agent_id: str, ids: list[str]) -> int:
        t = self.t
        found: dict[str, tuple[str, bytes | None, Any]] = {  # id -> (tier, raw blob, record)
            memory_id: (tier.name, blob, record) for memory_id, (tier, blob, record) in t.redis_records(agent_id, ids).items()}
        rest = [m for m in ids if m not in found]
        for record in (t.ltm.get_many(agent_id, rest) if rest else []):
            found[record.memory_id] = ("ltm", None, record)
        t.drop_pending_text(agent_id, [m for m in ids if m not in found])  # deleted before their turn
        if not found:
            return 0
        order = list(found)
        vectors = self._encode([contents_text(found[m][2].contents) for m in order])
        rewritten: dict[str, list[Any]] = {"stm": [], "im": [], "ltm": []}
        for memory_id, vector in zip(order, vectors):
            tier, blob, record = found[memory_id]
            resolution = TIER_RESOLUTION[tier]
            text = reduce(vector.reshape(1, -1), resolution)[0]
            embeddings = replace(record.embeddings, text_resolution=resolution, text_vector=text)
            if tier == "ltm":
                rewritten[tier].append((memory_id, embeddings))
            else:
                rewritten[tier].append((memory_id, blob, with_embeddings(cast(bytes, blob), embeddings)))
        for redis_tier in (t.stm, t.im):
            skipped = redis_tier.set_embeddings(agent_id, rewritten[redis_tier.name])
            if skipped:
                log.debug("%d records changed while embedding; they are embedded on the next pass", len(skipped))
        if rewritten["ltm"]:
            written = t.ltm.set_embeddings(agent_id, dict(rewritten["ltm"]), changed=t.ltm_stamp(agent_id))
            t.meta.note(agent_id, "upd", "ltm", written, unqueue=True)
        return len(found)

    def _follow(self) -> None:
        while not self._stopped:
            self._wake.wait()
            self._wake.clear()
            while self._agents and not self._stopped:
                agent_id = self._agents.pop()
                try:
                    self.catch_up(agent_id)
                except Exception as exc:  # noqa: BLE001 - a background pass must not die; queries catch up anyway
                    log.warning("background text embedding of %s failed: %s", agent_id, exc)

