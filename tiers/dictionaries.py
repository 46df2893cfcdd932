"""zstd dictionaries, named by their content and kept in Redis and in LTM alike.

A compressed payload names the dictionary it needs by the dictionary's id, a hash of its bytes
(:func:`dictionary_id`), so an id means the same bytes to every process, every Redis and every
LTM: a payload can never meet another deployment's dictionary under its number. A dictionary is
written to both stores before any payload uses it and read from whichever has it (Redis first);
bytes whose hash is not the id asked for are refused, and an id neither store holds is an error
(PayloadUnreadableError), never garbage.

    <prefix>:dict:<id>                 string  a dictionary's bytes
    <prefix>:deployment, dictionary    field   the id new payloads are compressed with
    tiermem_zstd_dictionaries          SQL     dict_id, created, data
    tiermem_deployments.dictionary     SQL     the id new payloads are compressed with

Ids below ``2**62`` are the numbers LTMs gave their dictionaries before (1, 2, ...); payloads
that name one are read with that LTM's own dictionary of that number (tiermem_dictionaries).
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from tiers.failures import reading, writing
from tiers.keys import KeySchema
from tiers.ltm_schema import deployments, dictionaries, guarded, numbered_dictionaries

CONTENT_IDS = 1 << 62  # ids from here up are content hashes; below, an LTM's own numbers
DICTIONARY_FIELD = "dictionary"  # of the deployment hash (tiers/deployment.py)


def dictionary_id(data: bytes) -> int:
    """The id of a dictionary: 62 bits of its SHA-256, above every number an LTM gave one."""
    return CONTENT_IDS | (int.from_bytes(hashlib.sha256(data).digest()[:8], "big") >> 2)


class DictionaryStore:
    """The codec's dictionaries (tiers/codec.py: ``load``, ``save``, ``latest``) for one deployment."""

    def __init__(self, client: Any, keys: KeySchema, engine: Any, namespace: str):
        self.client, self.keys, self.engine, self.namespace = client, keys, engine, namespace

    def save(self, data: bytes) -> int:
        """Keep a new dictionary in both stores and make it the one new payloads use."""
        dict_id = dictionary_id(data)

        def in_sql() -> None:
            with self.engine.begin() as conn:
                if conn.execute(select(dictionaries.c.dict_id).where(dictionaries.c.dict_id == dict_id)).first() is None:
                    try:
                        with conn.begin_nested():
                            conn.execute(insert(dictionaries).values(dict_id=dict_id, created=time.time(), data=data))
                    except IntegrityError:
                        pass  # another process saved the same bytes
                conn.execute(update(deployments).where(deployments.c.namespace == self.namespace)
                             .values(dictionary=dict_id))

        guarded(in_sql)
        # the bytes first, then the pointer to them: two keys in two slots on a cluster, so two calls
        writing("redis", lambda: self.client.set(self.keys.dictionary(dict_id), data, nx=True))
        writing("redis", lambda: self.client.hset(self.keys.deployment(), DICTIONARY_FIELD, dict_id))
        return dict_id

    def load(self, dict_id: int) -> bytes | None:
        """The dictionary's bytes from Redis or LTM (copied back to Redis if only LTM had them)."""
        if dict_id < CONTENT_IDS:
            return self._numbered(dict_id)
        data = reading("redis", lambda: self.client.get(self.keys.dictionary(dict_id)))
        if data is not None and dictionary_id(data) == dict_id:
            return data
        data = guarded(lambda: self._scalar(select(dictionaries.c.data).where(dictionaries.c.dict_id == dict_id)))
        if data is None or dictionary_id(bytes(data)) != dict_id:
            return None
        data = bytes(data)
        writing("redis", lambda: self.client.set(self.keys.dictionary(dict_id), data))
        return data

    def latest(self) -> tuple[int, bytes] | None:
        """The dictionary new payloads are compressed with, if the deployment trained one."""
        current = reading("redis", lambda: self.client.hget(self.keys.deployment(), DICTIONARY_FIELD))
        if current is None:
            current = guarded(lambda: self._scalar(
                select(deployments.c.dictionary).where(deployments.c.namespace == self.namespace)))
        if current is not None:
            data = self.load(int(current))
            return None if data is None else (int(current), data)
        # an LTM whose dictionaries are numbered (an older schema): its newest one, named by its content from here on
        newest = guarded(lambda: self._scalar(select(numbered_dictionaries.c.data)
                                              .order_by(numbered_dictionaries.c.dict_id.desc()).limit(1)))
        if newest is None:
            return None
        return self.save(bytes(newest)), bytes(newest)

    def _numbered(self, dict_id: int) -> bytes | None:
        data = guarded(lambda: self._scalar(
            select(numbered_dictionaries.c.data).where(numbered_dictionaries.c.dict_id == dict_id)))
        return None if data is None else bytes(data)

    def _scalar(self, statement: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(statement).scalar()
