"""Drives a running llm-gateway with the official OpenAI Python SDK's Responses API (client.responses).

Called by the Swift test suite (SDKCompatibilityTests) with GATEWAY_URL and GATEWAY_KEY set. For each
`model=provider` on the command line it checks responses.create with a string and with items, a stream,
a function tool round trip, and kept responses: retrieve, previous_response_id (plain, with a tool output, streamed)
and delete. Prints one line per check and exits non-zero on the first failure.
"""
import json
import os
import sys

import openai

from sdk_checks import WEATHER_PARAMETERS, check

client = openai.OpenAI(base_url=os.environ["GATEWAY_URL"] + "/v1", api_key=os.environ["GATEWAY_KEY"], max_retries=0)

TOOLS = [{"type": "function", "name": "get_weather", "description": "Current weather in a city", "parameters": WEATHER_PARAMETERS}]


def run(model, provider):
    reply = client.responses.create(model=model, input="hello sdk", instructions="Be terse.")
    check(reply.object == "response" and reply.status == "completed", f"{model} shape {reply}")
    check(reply.output_text == f"Hello from {provider}: hello sdk", f"{model} output_text {reply.output_text!r}")
    check(reply.usage.input_tokens > 0 and reply.usage.output_tokens > 0, f"{model} usage {reply.usage}")
    items = client.responses.create(model=model, input=[{"role": "user", "content": [{"type": "input_text", "text": "hello items"}]}])
    check(items.output_text == f"Hello from {provider}: hello items", f"{model} items {items.output_text!r}")
    print(f"ok {model} create")

    text, types, completed = "", [], None
    with client.responses.stream(model=model, input="hello stream") as stream:
        for event in stream:
            types.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        completed = stream.get_final_response()
    check(types[0] == "response.created" and types[-1] == "response.completed", f"{model} event types {types}")
    check(text == f"Hello from {provider}: hello stream", f"{model} streamed text {text!r}")
    check(completed.output_text == text and completed.usage.output_tokens > 0, f"{model} final response {completed}")
    print(f"ok {model} stream")

    asked = client.responses.create(model=model, input="weather in Paris?", tools=TOOLS)
    calls = [item for item in asked.output if item.type == "function_call"]
    check(len(calls) == 1 and calls[0].name == "get_weather", f"{model} function call {asked.output}")
    check(json.loads(calls[0].arguments) == {"city": "Paris"}, f"{model} arguments {calls[0].arguments!r}")
    follow = client.responses.create(model=model, tools=TOOLS, input=[
        {"role": "user", "content": "weather in Paris?"},
        {"type": "function_call", "call_id": calls[0].call_id, "name": calls[0].name, "arguments": calls[0].arguments},
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"},
    ])
    check(follow.status == "completed" and follow.output_text, f"{model} after the tool output {follow.output}")
    arguments = ""
    with client.responses.stream(model=model, input="weather in Paris?", tools=TOOLS) as stream:
        for event in stream:
            if event.type == "response.function_call_arguments.delta":
                arguments += event.delta
    check(json.loads(arguments) == {"city": "Paris"}, f"{model} streamed arguments {arguments!r}")
    print(f"ok {model} tools")

    kept = client.responses.retrieve(reply.id)
    check(kept.id == reply.id and kept.output_text == reply.output_text and kept.store, f"{model} retrieve {kept}")
    again = client.responses.create(model=model, input="and again", previous_response_id=reply.id)
    check(again.previous_response_id == reply.id, f"{model} previous_response_id echo {again.previous_response_id!r}")
    check(again.output_text == f"Hello from {provider}: and again", f"{model} continued {again.output_text!r}")
    answered = client.responses.create(model=model, tools=TOOLS, previous_response_id=asked.id, input=[
        {"type": "function_call_output", "call_id": calls[0].call_id, "output": "sunny"},
    ])
    check(answered.status == "completed" and answered.output_text, f"{model} tool output after previous_response_id {answered.output}")
    streamed = ""
    with client.responses.stream(model=model, input="stream on", previous_response_id=again.id) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                streamed += event.delta
        final = stream.get_final_response()
    check(streamed == f"Hello from {provider}: stream on" and final.previous_response_id == again.id, f"{model} streamed continuation")
    client.responses.delete(reply.id)
    try:
        client.responses.retrieve(reply.id)
        check(False, f"{model} a deleted response was still retrieved")
    except openai.NotFoundError as error:
        check(error.body["code"] == "response_not_found", f"{model} retrieve after delete {error.body}")
    print(f"ok {model} kept responses")

    try:
        client.responses.create(model=model, input="x", previous_response_id=reply.id)
        check(False, "previous_response_id of a deleted response was accepted")
    except openai.NotFoundError as error:
        check(error.body["code"] == "previous_response_not_found", f"previous_response_id error {error.body}")
    print(f"ok {model} errors")


for argument in sys.argv[1:]:
    name, provider = argument.split("=", 1)
    run(name, provider)
print("responses sdk checks passed")
