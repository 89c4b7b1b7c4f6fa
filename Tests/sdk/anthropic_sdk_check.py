"""Drives a running llm-gateway with the official Anthropic Python SDK, as Claude Code and Anthropic SDK apps do.

Called by the Swift test suite (SDKCompatibilityTests) with GATEWAY_URL and GATEWAY_KEY set. For each
`model=provider` on the command line it checks messages.create, messages.stream, a tool round trip and
count_tokens; for Anthropic-served models also thinking blocks with their signatures across two turns.
Prints one line per check and exits non-zero on the first failure.
"""
import os
import sys

import anthropic

from sdk_checks import WEATHER_PARAMETERS, check

URL, KEY = os.environ["GATEWAY_URL"], os.environ["GATEWAY_KEY"]
# The SDK's x-api-key, and Claude Code's ANTHROPIC_AUTH_TOKEN (Authorization: Bearer).
by_key = anthropic.Anthropic(base_url=URL, api_key=KEY, max_retries=0)
by_token = anthropic.Anthropic(base_url=URL, auth_token=KEY, api_key=None, max_retries=0)

TOOLS = [{"name": "get_weather", "description": "Current weather in a city", "input_schema": WEATHER_PARAMETERS}]
SYSTEM = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]


def run(model, provider):
    for client in (by_key, by_token):
        reply = client.messages.create(model=model, max_tokens=1024, system=SYSTEM, messages=[{"role": "user", "content": "hello sdk"}])
        check(reply.type == "message" and reply.role == "assistant", f"{model} shape {reply}")
        check(reply.content[0].type == "text" and reply.content[0].text == f"Hello from {provider}: hello sdk", f"{model} text {reply.content}")
        check(reply.stop_reason == "end_turn", f"{model} stop_reason {reply.stop_reason}")
        check(reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0, f"{model} usage {reply.usage}")
    print(f"ok {model} create")

    with by_key.messages.stream(model=model, max_tokens=1024, messages=[{"role": "user", "content": "hello stream"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    check(text == f"Hello from {provider}: hello stream", f"{model} streamed text {text!r}")
    check(final.content[0].text == text and final.stop_reason == "end_turn", f"{model} final message {final}")
    check(final.usage.output_tokens > 0, f"{model} streamed usage {final.usage}")
    print(f"ok {model} stream")

    ask = [{"role": "user", "content": "weather in Paris?"}]
    reply = by_key.messages.create(model=model, max_tokens=1024, tools=TOOLS, messages=ask)
    use = next((block for block in reply.content if block.type == "tool_use"), None)
    check(reply.stop_reason == "tool_use" and use is not None, f"{model} tool_use {reply}")
    check(use.name == "get_weather" and use.input == {"city": "Paris"}, f"{model} tool input {use.input!r}")
    with by_key.messages.stream(model=model, max_tokens=1024, tools=TOOLS, messages=ask) as stream:
        streamed = stream.get_final_message()
    streamed_use = next((block for block in streamed.content if block.type == "tool_use"), None)
    check(streamed_use is not None and streamed_use.input == {"city": "Paris"}, f"{model} streamed tool input {streamed.content}")
    follow = ask + [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in reply.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
    ]
    final = by_key.messages.create(model=model, max_tokens=1024, tools=TOOLS, messages=follow)
    check(final.stop_reason == "end_turn", f"{model} after the tool result {final.stop_reason}")
    print(f"ok {model} tools")

    counted = by_key.messages.count_tokens(model=model, system=SYSTEM, tools=TOOLS, messages=[{"role": "user", "content": "count me"}])
    check(counted.input_tokens > 0, f"{model} count_tokens {counted}")
    print(f"ok {model} count_tokens")

    if provider == "anthropic":
        thinking = {"type": "enabled", "budget_tokens": 1024}
        with by_key.messages.stream(model=model, max_tokens=2048, thinking=thinking, messages=[{"role": "user", "content": "think"}]) as stream:
            first = stream.get_final_message()
        block = first.content[0]
        check(block.type == "thinking" and block.signature.startswith("sig-"), f"{model} thinking {first.content}")
        turns = [
            {"role": "user", "content": "think"},
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
            {"role": "user", "content": "again"},
        ]
        second = by_key.messages.create(model=model, max_tokens=2048, thinking=thinking, messages=turns)
        check(second.content[0].type == "thinking", f"{model} second turn {second.content}")
        print(f"ok {model} thinking")

    try:
        by_key.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        check(False, "an unknown model was answered")
    except anthropic.NotFoundError as error:
        check(error.body["error"]["type"] == "not_found_error", f"not found body {error.body}")
    try:
        anthropic.Anthropic(base_url=URL, api_key="gw_wrong", max_retries=0).messages.create(
            model=model, max_tokens=10, messages=[{"role": "user", "content": "x"}])
        check(False, "a wrong key was accepted")
    except anthropic.AuthenticationError:
        pass
    ids = [entry.id for entry in by_key.models.list()]
    check(model in ids, f"{model} missing from models.list {ids}")
    print(f"ok {model} errors and models")


for argument in sys.argv[1:]:
    name, provider = argument.split("=", 1)
    run(name, provider)
print("anthropic sdk checks passed")
