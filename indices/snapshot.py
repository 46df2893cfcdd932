"""The long-term tier's index of one agent, persisted beside the database.

LTM can hold millions of an agent's memories; reading all their vectors back from SQL and
building its HNSW graph again would make a restarted process wait. So after building an
agent's LTM index, a process saves it (numpy arrays and the serialized FAISS index, no pickle)
with the agent's LTM change stamp. A later load takes the file and then only the rows written
and deleted after that stamp (the ``changed`` column and the deletion log in SQL). Stamps come
from a Redis counter taken just before each LTM write, so a write in flight while a file was
saved may carry a stamp just below the file's: loads re-read the last ``STAMP_MARGIN`` stamps
too (re-applying a row is harmless). Clearing an agent sets a new epoch; files of another epoch
are ignored.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from indices.tier_index import TierIndex

log = logging.getLogger(__name__)

STAMP_MARGIN = 16
FORMAT = 2  # 2: with the attribute index


class SnapshotStore:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def path(self, agent_id: str) -> Path:
        digest = hashlib.sha256(agent_id.encode()).hexdigest()[:32]  # agent ids may hold '/'
        return self.directory / f"{digest}.ltm.npz"

    def save(self, agent_id: str, index: TierIndex, stamp: int, epoch: str) -> None:
        arrays = index.to_arrays()
        arrays.update(format=np.array(FORMAT), agent=np.array(agent_id), stamp=np.array(stamp), epoch=np.array(epoch))
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **arrays as allow_pickle
            os.replace(temporary, self.path(agent_id))  # readers see the old file or the new one
        except OSError as exc:
            log.warning("could not save the LTM index of %s: %s", agent_id, exc)
            Path(temporary).unlink(missing_ok=True)

    def load(self, agent_id: str, epoch: str, into: TierIndex) -> int | None:
        """Fill ``into`` from the agent's file; returns the stamp to read changes after, or None
        when there is no usable file."""
        path = self.path(agent_id)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format"]) != FORMAT or str(data["agent"]) != agent_id or str(data["epoch"]) != epoch:
                    return None
                into.from_arrays({name: data[name] for name in data.files})
                return max(0, int(data["stamp"]) - STAMP_MARGIN)
        except (OSError, ValueError, KeyError) as exc:
            log.warning("ignoring the unreadable LTM index file %s: %s", path, exc)
            return None

