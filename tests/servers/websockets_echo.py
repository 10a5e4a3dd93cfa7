"""A WebSocket server for Courier's tests, built on the `websockets` library (Debian's
python3-websockets): its handshake, framing, ping/pong and close handling are the library's.

    python3 websockets_echo.py PORT [CERT KEY]

Paths: /echo echoes every message as it came (text or binary, any size up to 256 MiB);
/close/CODE closes at once with CODE and the reason "bye"; /send/N sends one binary message of N
bytes, then echoes; /silent reads and never answers (a close is the library's to answer);
/headers sends the handshake's request headers as one text message (lower-case name: value
lines); /fragments sends the text "fragmented" as one message in three frames, then echoes. Subprotocols offered by the client are chosen from "superchat" and "chat".
"""
import asyncio
import ssl
import sys

import websockets


async def handler(ws, path):
    if path.startswith("/close/"):
        await ws.close(code=int(path.rsplit("/", 1)[1]), reason="bye")
        return
    if path.startswith("/send/"):
        await ws.send(b"\x07" * int(path.rsplit("/", 1)[1]))
    if path == "/headers":
        lines = [f"{k.lower()}: {v}" for k, v in ws.request_headers.raw_items()]
        await ws.send("\n".join(lines))
    if path == "/fragments":
        # One text message in three frames (a continuation, then the final one).
        await ws.send(["frag", "ment", "ed"])
    if path == "/silent":
        await asyncio.Future()
    async for message in ws:
        await ws.send(message)


async def main():
    port = int(sys.argv[1])
    context = None
    if len(sys.argv) > 3:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[2], sys.argv[3])
    async with websockets.serve(
        handler,
        "127.0.0.1",
        port,
        subprotocols=["superchat", "chat"],
        max_size=256 * 1024 * 1024,
        ssl=context,
        compression=None,
    ):
        await asyncio.Future()


asyncio.run(main())
