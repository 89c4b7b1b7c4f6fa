"""A streaming OpenAI-compatible upstream for benchmarks: every chat completion is answered as an SSE stream of
CHUNKS content chunks sent INTERVAL_MS apart (each content carries its send time in
nanoseconds of CLOCK_MONOTONIC: "tok3@123456789 "), then a usage chunk and [DONE]. asyncio, so a thousand open
streams cost it little.

Usage: python3 bench/stream_upstream.py PORT CHUNKS INTERVAL_MS
"""
import asyncio
import json
import sys
import time

PORT, CHUNKS, INTERVAL = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]) / 1000


def event(payload):
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def chunk(delta, finish=None, usage=None):
    body = {"id": "chatcmpl-stream", "object": "chat.completion.chunk", "created": 0, "model": "bench-stream",
            "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage:
        body["usage"] = usage
    return event(body)


def frame(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


async def handle(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length, close = 0, False
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
                if line.lower().replace(b" ", b"") == b"connection:close":
                    close = True
            if length:
                await reader.readexactly(length)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            writer.write(frame(chunk({"role": "assistant", "content": ""})))
            await writer.drain()
            for index in range(CHUNKS):
                await asyncio.sleep(INTERVAL)
                # The send time (CLOCK_MONOTONIC, shared by every process here) lets the harness see how long
                # each chunk took to arrive, directly or through the gateway.
                writer.write(frame(chunk({"content": "tok%d@%d " % (index, time.monotonic_ns())})))
                await writer.drain()
            writer.write(frame(chunk({}, finish="stop")))
            writer.write(frame(chunk(None, usage={"prompt_tokens": 10, "completion_tokens": CHUNKS, "total_tokens": 10 + CHUNKS})))
            writer.write(frame(b"data: [DONE]\n\n") + b"0\r\n\r\n")
            await writer.drain()
            if close:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", PORT, backlog=4096)
    async with server:
        await server.serve_forever()


asyncio.run(main())
