"""Structured output: a JSON Schema for the final answer, parsed into ``result.structured``.

OpenAI-compatible servers get ``response_format`` json_schema (servers that refuse it get
json_object, then a prompt instruction); Anthropic gets forced tool use. An invalid reply
is sent back once for repair; if it is still invalid, ``result.structured_error`` says why.
"""

import asyncio
import tempfile
from pathlib import Path

from _support import example_llm

from power_loop import (
    AgentLoopConfig,
    StatefulAgentLoop,
    StructuredOutputError,
    StructuredOutputSpec,
    parse_structured,
)

CONTACT = StructuredOutputSpec(
    name="contact",
    description="A person's contact card.",
    schema={
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}, "city": {"type": "string"}},
        "required": ["name", "age", "city"],
        "additionalProperties": False,
    },
)


async def main() -> None:
    with example_llm() as llm, tempfile.TemporaryDirectory() as tmp:
        config = AgentLoopConfig(output_schema=CONTACT, system_prompt="Extract contact cards.")
        async with StatefulAgentLoop(llm=llm, dsn=str(Path(tmp) / "structured.db"), config=config) as loop:
            sid = await loop.new_session()
            result = await loop.send("Extract: name=Ada age=36 city=London", session_id=sid)
            print(f"structured={result.structured} error={result.structured_error}")
            # a per-send schema overrides the config's for that send only
            city = {"name": "city", "schema": {"type": "object", "properties": {"city": {"type": "string"}},
                                               "required": ["city"], "additionalProperties": False}}
            only_city = await loop.send("Where does Bo live? city=Paris", session_id=sid, output_schema=city)
            print(f"per-send schema: {only_city.structured}")

    # parse_structured on its own: fences, surrounding prose and trailing commas are tolerated
    messy = 'Sure!\n```json\n{"name": "Bo", "age": 7, "city": "Oslo",}\n```'
    print(parse_structured(messy, schema=CONTACT.schema))
    try:
        parse_structured('{"name": "Bo", "age": "seven", "city": "Oslo"}', schema=CONTACT.schema)
    except StructuredOutputError as exc:
        print(f"reason={exc.reason}: {exc}")


if __name__ == "__main__":
    asyncio.run(main())
