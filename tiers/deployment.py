"""A deployment: one Redis key prefix and one LTM, bound by an identity recorded in both.

IM payloads in Redis may need what only the LTM can tell (which memories moved where, the
dictionaries that compressed them), so a prefix's Redis keys and an LTM belong together. Each
records the deployment's id:

    <prefix>:deployment      hash   id, ltm (where its LTM is, for messages), incarnation (the Redis
                                    time in microseconds the hash was written), dictionary
    tiermem_deployments      SQL    namespace (= prefix), deployment_id, created, dictionary

An engine binds the two before it reads or writes anything (:func:`bind`):

- neither holds an id: a new deployment, recorded in LTM, then in Redis;
- both hold the same id: this is that deployment;
- they differ, or Redis holds one and the LTM none: this engine points at another deployment's
  Redis prefix or LTM (another data directory, another database), or the LTM was lost. It is
  refused with MemoryConfigException naming both. `tiermem deployment --adopt` binds the prefix to
  this LTM when the old one is gone for good;
- the LTM holds one and Redis none: Redis lost its data (or this is another Redis server). It is
  bound again, with a new incarnation, and the loss is reported: what STM and IM held is gone,
  what LTM holds is all there.

A running engine checks the incarnation again whenever Redis shows it restarted (its scripts were
gone) and before maintenance; a new one means every cached answer and in-process index of the
deployment is dropped.
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from tiers.errors import MemoryConfigException
from tiers.failures import reading, writing
from tiers.keys import KeySchema
from tiers.ltm_schema import deployments, guarded
from tiers.scripts import Scripts

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Deployment:
    deployment_id: str
    incarnation: str  # of the Redis side; a new one means Redis lost its data
    redis_lost: bool = False  # bound again because Redis no longer held the deployment


def describe(url: Any) -> str:
    """A database or Redis URL as a message may show it: no password."""
    return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", str(url))


class Binding:
    """Reads and writes the two records of one deployment (see the module docstring)."""

    def __init__(self, client: Any, keys: KeySchema, scripts: Scripts, engine: Any, namespace: str,
                 redis_where: str):
        self.client, self.keys, self.scripts = client, keys, scripts
        self.engine, self.namespace = engine, namespace
        self.redis_where = describe(redis_where)
        self.ltm_where = describe(engine.url.render_as_string(hide_password=True))

    def bind(self) -> Deployment:
        """Bind this prefix and this LTM, or refuse (MemoryConfigException naming both)."""
        in_ltm = self._ltm_record()
        in_redis = self._redis_record()
        redis_lost = in_ltm is not None and in_redis is None
        if in_ltm is None:
            if in_redis is not None:
                raise self._refusal(in_redis, None)
            in_ltm = self._record_in_ltm(secrets.token_hex(16))
        if in_redis is None:
            in_redis = self._record_in_redis(in_ltm)
        if in_redis.get("id") != in_ltm:
            raise self._refusal(in_redis, in_ltm)
        if redis_lost:
            log.warning(
                "Redis at %s holds nothing of deployment %s under prefix %r (it lost its data, or it is another "
                "Redis server): the memories its short-term and intermediate tiers held are gone; the long-term "
                "tier's are all here", self.redis_where, in_ltm, self.keys.prefix)
        return Deployment(in_ltm, in_redis.get("incarnation", ""), redis_lost)

    def current(self, known: Deployment) -> Deployment:
        """The deployment as Redis holds it now: ``known`` if unchanged, else bound again."""
        incarnation = reading("redis", lambda: self.client.hget(self.keys.deployment(), "incarnation"))
        if incarnation is not None and incarnation.decode() == known.incarnation:
            return known
        return self.bind()

    def adopt(self) -> Deployment:
        """Bind the prefix to this LTM whatever it was bound to before (the old LTM is gone for
        good; what its rows held is lost). Another LTM's payloads in Redis stay unreadable."""
        deployment_id = self._ltm_record() or self._record_in_ltm(secrets.token_hex(16))
        writing("redis", lambda: self.client.delete(self.keys.deployment()))
        return Deployment(deployment_id, self._record_in_redis(deployment_id).get("incarnation", ""))

    # -- the two records -----------------------------------------------------------------------
    def _redis_record(self) -> dict[str, str] | None:
        raw = reading("redis", lambda: self.client.hgetall(self.keys.deployment()))
        record = {k.decode(): v.decode() for k, v in raw.items()}
        return record if "id" in record else None

    def _record_in_redis(self, deployment_id: str) -> dict[str, str]:
        flat = writing("redis", lambda: self.scripts.call("bind", [self.keys.deployment()],
                                                          [deployment_id, self.ltm_where]))
        return {flat[i].decode(): flat[i + 1].decode() for i in range(0, len(flat), 2)}

    def _ltm_record(self) -> str | None:
        def run() -> str | None:
            with self.engine.connect() as conn:
                return conn.execute(select(deployments.c.deployment_id)
                                    .where(deployments.c.namespace == self.namespace)).scalar()

        return guarded(run)

    def _record_in_ltm(self, deployment_id: str) -> str:
        """Record a new deployment in LTM; the id recorded first wins (another process racing)."""
        def run() -> None:
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(deployments).values(
                        namespace=self.namespace, deployment_id=deployment_id, created=time.time()))
            except IntegrityError:
                pass

        guarded(run)
        return self._ltm_record() or deployment_id

    def _refusal(self, in_redis: dict[str, str], in_ltm: str | None) -> MemoryConfigException:
        theirs = f"deployment {in_redis.get('id')} (its LTM: {in_redis.get('ltm', 'unknown')})"
        ours = (f"the LTM at {self.ltm_where} belongs to deployment {in_ltm}" if in_ltm is not None else
                f"the LTM at {self.ltm_where} holds no deployment for prefix {self.keys.prefix!r}")
        return MemoryConfigException(
            f"Redis at {self.redis_where} under key prefix {self.keys.prefix!r} belongs to {theirs}, but {ours}. "
            "Point this engine at that LTM (the same data_dir, ltm_config.url or db_path), or use another "
            "key_prefix; if that LTM is lost for good, `tiermem deployment --adopt` binds the prefix to this one.")

