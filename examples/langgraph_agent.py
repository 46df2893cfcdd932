"""A LangGraph agent whose long-term memory is tiermem, offline: no LLM and no model to download.

One node, ``respond``, takes a user's message and the store LangGraph injects into it:
"remember <fact>" keeps a fact about the user, "forget <words>" drops the facts that best match,
"what do you know" lists them, and anything else is answered with the fact nearest the question
(a semantic search through IndexConfig, here with a small hashing embedding in place of a
model). The facts live in the namespace ("users", <user_id>, "facts"): a TierMemStore namespace,
so one agent of the engine, held across its tiers and across runs.

    python examples/langgraph_agent.py     # REDIS_URL="" for the embedded engine in ./.tiermem

prints the conversation, the same every time it runs (it forgets its user first).
"""

from __future__ import annotations

import hashlib
import re
from typing import TypedDict

import numpy as np
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

from memory import AgentMemoryAPI
from memory.langgraph_store import TierMemStore

WORD = re.compile(r"[a-z0-9]+")


class Turn(TypedDict, total=False):
    message: str
    reply: str


def embed(texts: list[str], dims: int = 128) -> list[list[float]]:
    """Each word hashed to a direction, words summed: texts sharing words point alike."""
    vectors = []
    for text in texts:
        vector = np.zeros(dims)
        for word in WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            vector[int.from_bytes(digest[:4], "little") % dims] += 1.0 if digest[4] % 2 else -1.0
        vectors.append(vector.tolist())
    return vectors


def respond(state: Turn, config: RunnableConfig, *, store: BaseStore) -> Turn:
    """The agent's one step: read and write the user's facts through the injected store."""
    namespace = ("users", config["configurable"]["user_id"], "facts")
    message = state["message"].strip()
    if message.startswith("remember "):
        fact = message.removeprefix("remember ")
        store.put(namespace, "-".join(WORD.findall(fact.lower()))[:64], {"fact": fact})
        return {"reply": f"noted: {fact}"}
    if message.startswith("forget "):
        found = store.search(namespace, query=message.removeprefix("forget "), limit=1)
        if not found or not found[0].score:
            return {"reply": "nothing like that to forget"}
        store.delete(namespace, found[0].key)
        return {"reply": f"forgot: {found[0].value['fact']}"}
    if message == "what do you know":
        facts = [item.value["fact"] for item in store.search(namespace, limit=100)]  # in the order learnt
        return {"reply": "; ".join(facts) if facts else "nothing yet"}
    found = store.search(namespace, query=message, limit=1)
    if not found or not found[0].score or found[0].score < 0.3:
        return {"reply": "I don't know"}
    return {"reply": found[0].value["fact"]}


def build(store: BaseStore):
    graph = StateGraph(Turn)
    graph.add_node("respond", respond)
    graph.add_edge(START, "respond")
    graph.add_edge("respond", END)
    return graph.compile(store=store)


CONVERSATION = [
    "remember my name is Ada",
    "remember I work on the analytical engine",
    "remember my favourite colour is teal",
    "what is my name",
    "what do I work on",
    "what is my favourite colour",
    "what is the weather",
    "forget favourite colour",
    "what do you know",
]


def talk(store: TierMemStore, user_id: str = "ada", messages: list[str] = CONVERSATION) -> list[str]:
    """The conversation's replies, one graph run a message."""
    agent = build(store)
    config: RunnableConfig = {"configurable": {"user_id": user_id}}
    return [agent.invoke({"message": message}, config)["reply"] for message in messages]


def forget_user(store: TierMemStore, user_id: str) -> None:
    namespace = ("users", user_id, "facts")
    for item in store.search(namespace, limit=1000):
        store.delete(namespace, item.key)


def main() -> None:
    with AgentMemoryAPI() as api:
        dims = api.config.search_config.vector_dim
        store = TierMemStore(api, index={"dims": dims, "embed": lambda texts: embed(texts, dims), "fields": ["fact"]})
        forget_user(store, "ada")  # start afresh, so the script can run again
        for message, reply in zip(CONVERSATION, talk(store)):
            print(f"> {message}\n  {reply}")


if __name__ == "__main__":
    main()
