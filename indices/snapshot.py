"""One agent's indices, persisted beside the database: the long-term tier's, and, when an engine
closes, the short-term and intermediate tiers' too.

LTM can hold millions of an agent's memories; reading all their vectors back from SQL and
building its HNSW graph again would make a restarted process wait. So after building an
agent's LTM index, a process saves it (numpy arrays and the serialized FAISS index, no pickle)
with the agent's LTM change stamp. A later load takes the file and then only the rows written
and deleted after that stamp (the ``changed`` column and the deletion log in SQL). Stamps come
from a Redis counter taken just before each LTM write, so a write in flight while a file was
saved may carry a stamp just below the file's: loads re-read the last ``STAMP_MARGIN`` stamps
too (re-applying a row is harmless). Clearing an agent sets a new epoch; files of another epoch
are ignored.

STM's and IM's indices are saved with the change-log position they reflect, the Redis
incarnation and the agent's epoch: a later load takes the file when all three still hold and
reads the log from that position (indices/catalog.py); a log that moved on too far, a Redis that
lost its data, or a cleared agent make the load build from the tiers instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from indices.tier_index import TierIndex

log = logging.getLogger(__name__)

STAMP_MARGIN = 16
FORMAT = 3  # 2: with the attribute index; 3: with the settings it was made with


class SnapshotStore:
    def __init__(self, directory: str | Path):
        self.directory = Path(directory)

    def path(self, agent_id: str) -> Path:
        digest = hashlib.sha256(agent_id.encode()).hexdigest()[:32]  # agent ids may hold '/'
        return self.directory / f"{digest}.ltm.npz"

    def redis_path(self, agent_id: str) -> Path:
        return self.path(agent_id).with_suffix("").with_suffix(".redis.npz")

    def save(self, agent_id: str, index: TierIndex, stamp: int, epoch: str) -> None:
        arrays = index.to_arrays()
        arrays.update(format=np.array(FORMAT), agent=np.array(agent_id), stamp=np.array(stamp), epoch=np.array(epoch))
        self._write(self.path(agent_id), arrays, f"the LTM index of {agent_id}")

    def save_redis(self, agent_id: str, tiers: dict[str, TierIndex], position: int, incarnation: bytes,
                   epoch: str) -> None:
        """STM's and IM's indices (``tiers``), as of change-log ``position``."""
        arrays = {f"{name}__{key}": value for name, index in tiers.items() for key, value in index.to_arrays().items()}
        arrays.update(format=np.array(FORMAT), agent=np.array(agent_id), position=np.array(position),
                      incarnation=np.array(incarnation.hex()), epoch=np.array(epoch))
        self._write(self.redis_path(agent_id), arrays, f"the STM and IM indices of {agent_id}")

    def load_redis(self, agent_id: str, incarnation: bytes, epoch: str, into: dict[str, TierIndex]) -> int | None:
        """Fill ``into`` (empty STM and IM indices) from the agent's file; the change-log position
        to read on from, or None when there is no file that still holds (``into`` is then of no use)."""
        path = self.redis_path(agent_id)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if (int(data["format"]) != FORMAT or str(data["agent"]) != agent_id or str(data["epoch"]) != epoch
                        or str(data["incarnation"]) != incarnation.hex()):
                    return None
                for name, index in into.items():
                    start = f"{name}__"
                    index.from_arrays({key[len(start):]: data[key] for key in data.files if key.startswith(start)})
                return int(data["position"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("ignoring the unreadable index file %s: %s", path, exc)
            return None  # ``into`` may be half filled: the caller starts again from empty indices

    def _write(self, path: Path, arrays: dict[str, np.ndarray], what: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as out:
                np.savez(out, **arrays)  # type: ignore[arg-type]  # numpy's stub reads **arrays as allow_pickle
            os.replace(temporary, path)  # readers see the old file or the new one
        except OSError as exc:
            log.warning("could not save %s: %s", what, exc)
            Path(temporary).unlink(missing_ok=True)

    def load(self, agent_id: str, epoch: str, into: TierIndex) -> int | None:
        """Fill ``into`` from the agent's file; returns the file's LTM stamp (read the changes
        after it less STAMP_MARGIN), or None when there is no usable file."""
        path = self.path(agent_id)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format"]) != FORMAT or str(data["agent"]) != agent_id or str(data["epoch"]) != epoch:
                    return None
                into.from_arrays({name: data[name] for name in data.files})
                return int(data["stamp"])
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
            log.warning("ignoring the unreadable LTM index file %s: %s", path, exc)
            return None

