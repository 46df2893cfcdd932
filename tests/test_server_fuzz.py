"""The REST server's OpenAPI document, fuzzed with schemathesis: whatever a request holds, within
the document or just outside it, the server never answers 5xx. Every route, on the embedded
engine, with a steward's token so every route is reached; a few examples per route and mode, so
this stays quick.

Schemathesis's pytest loader (``from_fixture``) reads a pytest internal that pytest 9 removed, so
the cases come from each operation's Hypothesis strategy, run in one test.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from memory.server.app import create_app
from memory.server.auth import TokenTable

TOKEN = "steward-fuzzing-token"
TOKENS = TokenTable.parse([{"token": TOKEN, "tier": "steward"}], "the fuzz test")
EXAMPLES = 6  # per route and generation mode


@pytest.fixture
def redis_engine() -> str:
    return "embedded"


def test_no_request_gets_a_server_error(make_api: Any, make_memory: Any) -> None:
    engine = make_api(search_config={"text_embedding": "off"})
    engine.store_agent_state("agent-1", {"position": [1, 2], "health": 0.5}, step_number=1)
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(engine, make_memory(), tokens=TOKENS))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 25
    fixed = {"GET /v1/teams/{team_id}/signals": {"timeout": 0}}  # a receive waits up to 30 s for a signal
    for operation in operations:
        takes = any(len(part) for part in (operation.path_parameters, operation.query, operation.body))
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE) if takes else (GenerationMode.POSITIVE,):

            @given(case=operation.as_strategy(generation_mode=mode, query=fixed.get(operation.label)))
            @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
                      phases=[Phase.explicit, Phase.generate])  # shrinking a slow request takes minutes
            def fuzz(case: Any) -> None:
                case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error])

            fuzz()
