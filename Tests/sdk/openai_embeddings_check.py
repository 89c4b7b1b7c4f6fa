"""Drives a running llm-gateway's /v1/embeddings with the official OpenAI Python SDK.

Called by the Swift test suite (SDKCompatibilityTests) with GATEWAY_URL and GATEWAY_KEY set. For each model given
on the command line (name=provider) it asks for floats, then for the SDK's default (base64, which the SDK decodes),
then for fewer dimensions, and checks the vectors agree. Prints one line per check; exits non-zero on the first failure.
"""
import math
import os
import sys

import openai

from sdk_checks import check

client = openai.OpenAI(base_url=os.environ["GATEWAY_URL"] + "/v1", api_key=os.environ["GATEWAY_KEY"], max_retries=0)


def run(model, provider):
    texts = ["the sdk asks", "for two vectors"]
    floats = client.embeddings.create(model=model, input=texts, encoding_format="float")
    check(len(floats.data) == 2, f"{model} float: {len(floats.data)} vectors")
    check(floats.usage.prompt_tokens > 0, f"{model} usage {floats.usage}")
    for item in floats.data:
        norm = math.sqrt(sum(v * v for v in item.embedding))
        check(abs(norm - 1) < 1e-6, f"{model} float vector {item.index} norm {norm}")
    print(f"ok {model} float")

    default = client.embeddings.with_raw_response.create(model=model, input=texts)
    check(default.headers.get("x-provider") == provider, f"{model} X-Provider {default.headers.get('x-provider')}")
    decoded = default.parse()
    for a, b in zip(decoded.data, floats.data):
        check(len(a.embedding) == len(b.embedding), f"{model} base64 length {len(a.embedding)} vs {len(b.embedding)}")
        check(max(abs(x - y) for x, y in zip(a.embedding, b.embedding)) < 1e-6, f"{model} base64 differs from float")
    print(f"ok {model} base64")

    small = client.embeddings.create(model=model, input="the sdk asks", dimensions=8)
    check(len(small.data[0].embedding) == 8, f"{model} dimensions=8 gave {len(small.data[0].embedding)}")
    print(f"ok {model} dimensions")

    try:
        client.embeddings.create(model=model, input="")
        check(False, f"{model} empty input was accepted")
    except openai.BadRequestError as error:
        check(error.body is not None and error.body.get("param") == "input", f"{model} empty input error {error.body}")
    print(f"ok {model} error envelope")


for argument in sys.argv[1:]:
    name, provider = argument.split("=")
    run(name, provider)
print("sdk embeddings checks passed")
