"""Drives a running llm-gateway with the official OpenAI Python SDK.

Called by the Swift test suite (SDKCompatibilityTests) with GATEWAY_URL and GATEWAY_KEY set.
For each model given on the command line it checks a plain answer, a stream (with usage),
and a tool call round trip. Prints one line per check and exits non-zero on the first failure.
"""
import json
import os
import sys

import openai

from sdk_checks import WEATHER_PARAMETERS, check

client = openai.OpenAI(base_url=os.environ["GATEWAY_URL"] + "/v1", api_key=os.environ["GATEWAY_KEY"], max_retries=0)

TOOLS = [{
    "type": "function",
    "function": {"name": "get_weather", "description": "Current weather in a city", "parameters": WEATHER_PARAMETERS},
}]


def run(model, provider):
    reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello sdk"}])
    check(reply.choices[0].message.content == f"Hello from {provider}: hello sdk", f"{model} text: {reply.choices[0].message.content!r}")
    check(reply.choices[0].finish_reason == "stop", f"{model} finish_reason {reply.choices[0].finish_reason}")
    check(reply.usage is not None and reply.usage.total_tokens > 0, f"{model} usage {reply.usage}")
    raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "hi"}])
    check(raw.headers.get("x-provider") == provider, f"{model} X-Provider {raw.headers.get('x-provider')}")
    print(f"ok {model} non-stream")

    text, finish, usage, ids = "", None, None, set()
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hello stream"}], stream=True,
        stream_options={"include_usage": True})
    for chunk in stream:
        ids.add(chunk.id)
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            text += choice.delta.content or ""
            finish = choice.finish_reason or finish
    check(text == f"Hello from {provider}: hello stream", f"{model} streamed text {text!r}")
    check(finish == "stop", f"{model} streamed finish {finish}")
    check(usage is not None and usage.completion_tokens > 0, f"{model} streamed usage {usage}")
    check(len(ids) == 1, f"{model} chunk ids {ids}")
    print(f"ok {model} stream")

    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    reply = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    choice = reply.choices[0]
    check(choice.finish_reason == "tool_calls", f"{model} tool finish {choice.finish_reason}")
    call = choice.message.tool_calls[0]
    check(call.function.name == "get_weather", f"{model} tool name {call.function.name}")
    check(json.loads(call.function.arguments).get("city") == "Paris", f"{model} tool args {call.function.arguments}")
    messages.append(choice.message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature_c": 21})})
    final = client.chat.completions.create(model=model, messages=messages, tools=TOOLS)
    check(final.choices[0].finish_reason == "stop", f"{model} after tool result {final.choices[0].finish_reason}")

    calls = {}
    stream = client.chat.completions.create(model=model, messages=messages[:1], tools=TOOLS, stream=True)
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                entry = calls.setdefault(delta.index, {"id": None, "name": "", "arguments": ""})
                entry["id"] = entry["id"] or delta.id
                entry["name"] += (delta.function.name or "") if delta.function else ""
                entry["arguments"] += (delta.function.arguments or "") if delta.function else ""
    check(calls and calls[0]["name"] == "get_weather" and calls[0]["id"], f"{model} streamed tool call {calls}")
    check(json.loads(calls[0]["arguments"]).get("city") == "Paris", f"{model} streamed tool args {calls}")
    print(f"ok {model} tools")

    try:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
        check(False, "unknown model accepted")
    except openai.NotFoundError as error:
        check(error.body is not None and "model" in str(error.body.get("message", "")), f"404 body {error.body}")
    print(f"ok {model} errors")


for argument in sys.argv[1:]:
    model, provider = argument.split("=")
    run(model, provider)
print("sdk checks passed")
