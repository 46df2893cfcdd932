"""examples/langgraph_agent.py: a LangGraph graph whose node reads and writes the injected
TierMemStore, with no LLM and no model, on both engines, and its main() run twice as a user would."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from memory.langgraph_store import TierMemStore

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "langgraph_agent.py"
_spec = importlib.util.spec_from_file_location("langgraph_agent", EXAMPLE)
agent = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(agent)  # type: ignore[union-attr]

REPLIES = [
    "noted: my name is Ada",
    "noted: I work on the analytical engine",
    "noted: my favourite colour is teal",
    "my name is Ada",
    "I work on the analytical engine",
    "my favourite colour is teal",
    "I don't know",
    "forgot: my favourite colour is teal",
    "my name is Ada; I work on the analytical engine",
]


def test_the_agent_remembers_through_the_store_on_both_engines(make_api):
    api = make_api(search_config={"vector_dim": 64, "text_embedding": "off"})
    store = TierMemStore(api, index={"dims": 64, "embed": lambda texts: agent.embed(texts, 64), "fields": ["fact"]})
    assert agent.talk(store) == REPLIES
    assert agent.talk(store, "bob", ["what do you know", "what is my name"]) == ["nothing yet", "I don't know"]
    assert [item.value for item in store.search(("users", "ada", "facts"))] == [
        {"fact": "my name is Ada"}, {"fact": "I work on the analytical engine"}]
    agent.forget_user(store, "ada")
    assert store.list_namespaces() == []


@pytest.mark.parametrize("engine", ["embedded"])  # main()'s own engine: not repeated on a cluster run
def test_main_prints_the_conversation_the_same_when_run_again(tmp_path, monkeypatch, capsys, engine):
    monkeypatch.setenv("REDIS_URL", "")  # the embedded engine, in ./.tiermem of the working directory
    monkeypatch.delenv("TIERMEM_KEY_PREFIX", raising=False)
    monkeypatch.chdir(tmp_path)
    printed = []
    for _ in range(2):
        agent.main()
        printed.append(capsys.readouterr().out)
    expected = "".join(f"> {message}\n  {reply}\n" for message, reply in zip(agent.CONVERSATION, REPLIES))
    assert printed == [expected, expected]
    assert (tmp_path / ".tiermem").is_dir()
