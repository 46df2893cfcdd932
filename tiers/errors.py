"""The one exception tree of tiermem.

    MemoryAPIException
    ├── MemoryStoreException          a write failed or was refused
    │   ├── InvalidInputError          (also a ValueError) bad agent id, step, type or data
    │   ├── OutcomeUnknownError        a write reached Redis, its reply was lost: it may have happened
    │   └── StoreIncompleteError       store_many wrote some agents' records, not others (says which)
    ├── MemoryRetrievalException      a read failed
    │   ├── MemoryNotFoundError        (also a KeyError) no memory with that id
    │   └── PayloadUnreadableError     a stored payload needs a dictionary no store holds (lost data)
    ├── MemoryMaintenanceException    a tier move or heal failed; carries the partial report
    └── MemoryConfigException         (also a ValueError) a bad or unknown option
        └── MissingExtraError          (also an ImportError) a feature whose optional extra is not installed

redis and SQLAlchemy errors are translated into these at the tier boundary (``raise ... from``),
so callers never need to import a driver to handle a failure.
"""

from __future__ import annotations

from typing import Any


class MemoryAPIException(Exception):
    """Root of every error tiermem raises on purpose."""


class MemoryStoreException(MemoryAPIException):
    """A write did not happen. Nothing is half-written: a failed write leaves the tiers as they were."""


class InvalidInputError(MemoryStoreException, ValueError):
    """The caller passed something tiermem refuses to store or look up."""


class OutcomeUnknownError(MemoryStoreException):
    """A write reached Redis and its reply was lost, twice (the call was sent again once): it may
    or may not have taken effect. Every write that tiermem sends again is idempotent or carries a
    request id, so this is raised only when Redis stopped answering; read before writing again."""

    def __init__(self, tier: str, message: str):
        super().__init__(f"{tier}: {message}")
        self.tier = tier


class StoreIncompleteError(MemoryStoreException):
    """``store_many`` stopped part-way. Each agent's records are written all together or not at
    all: ``landed`` names the agents whose records are stored, ``not_landed`` those whose records
    are not, ``unknown`` those Redis stopped answering for (written entirely or not at all).
    ``memory_ids`` are the ids the call gave its records, in input order. Calling ``store_many``
    again with the same records and the same ``idempotency_key`` writes each record once."""

    def __init__(self, message: str, landed: frozenset[str], not_landed: frozenset[str],
                 unknown: frozenset[str], memory_ids: list[str]):
        super().__init__(message)
        self.landed, self.not_landed, self.unknown = landed, not_landed, unknown
        self.memory_ids = memory_ids


class MemoryRetrievalException(MemoryAPIException):
    """A read could not be answered."""


class MemoryNotFoundError(MemoryRetrievalException, KeyError):
    """No memory with that id exists for that agent."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class PayloadUnreadableError(MemoryRetrievalException):
    """A stored payload cannot be read: the zstd dictionary it names is in neither Redis nor LTM
    (one of them lost its data, or it was written by another deployment). Never decoded as garbage."""


class MemoryMaintenanceException(MemoryAPIException):
    """Maintenance stopped part-way. Every memory is still findable (invariant 1).

    ``report`` holds what had been moved before the failure.
    """

    def __init__(self, message: str, report: Any = None):
        super().__init__(message)
        self.report = report


class MemoryConfigException(MemoryAPIException, ValueError):
    """A configuration value is unknown, out of range or cannot be used."""


class TierUnavailableError(MemoryAPIException):
    """A backing store (Redis or the SQL database) did not answer.

    Raised by the tiers; the engine re-raises it as the store/retrieval/maintenance error that
    fits the operation, or degrades when configured to.
    """

    def __init__(self, tier: str, message: str):
        super().__init__(f"{tier}: {message}")
        self.tier = tier


class MissingExtraError(MemoryConfigException, ImportError):
    """A feature needs an optional extra that is not installed; the message says how to install it.

    ``extra`` names it (e.g. ``"text"``: ``pip install 'tiermem[text]'``).
    """

    def __init__(self, extra: str, message: str):
        super().__init__(
            f"{message}: install the {extra!r} extra, pip install 'tiermem[{extra}]' "
            f"(from a tiermem checkout: make install)"
        )
        self.extra = extra
