#!/usr/bin/env python3
"""A target written by nobody here (aiohttp's web server, from PyPI), for integration tests.

  /log?id=N      200, {"id":N} with Content-Length
  /chunked?id=N  200, {"id":N} sent with Transfer-Encoding: chunked, in pieces
  /empty?id=N    204, no body
  /notmod?id=N   304, no body
  /echo          200, JSON {"method", "headers": [[name, value], ...], "body"} of the request
  /digest        200, JSON {"length", "sha256"} of a POST's body (up to 64 MiB)

Prints "listening on http://127.0.0.1:PORT" once it accepts connections.
"""
import asyncio
import hashlib
import socket
import sys

from aiohttp import web


def body(request):
    return ('{"id":%s}' % request.query.get("id", "null")).encode()


async def log(request):
    return web.Response(body=body(request), content_type="application/json")


async def chunked(request):
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    resp.content_type = "application/json"
    await resp.prepare(request)
    data = body(request)
    for i in range(0, len(data), 3):
        await resp.write(data[i : i + 3])
    await resp.write_eof()
    return resp


async def empty(request):
    return web.Response(status=204)


async def notmod(request):
    return web.Response(status=304)


async def echo(request):
    data = await request.read()
    return web.json_response({
        "method": request.method,
        "headers": [[k, v] for k, v in request.headers.items()],
        "body": data.decode("utf-8", "replace"),
    })


async def digest(request):
    data = await request.read()
    return web.json_response({"length": len(data), "sha256": hashlib.sha256(data).hexdigest()})


async def listen(routes):
    # Bodies of several MiB (the default refuses over 1 MiB).
    app = web.Application(client_max_size=64 << 20)
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    site = web.SockSite(runner, sock)
    await site.start()
    print(f"listening on http://127.0.0.1:{sock.getsockname()[1]}", flush=True)
    await asyncio.Event().wait()


def serve(routes):
    """Serves `routes` on a free loopback port until interrupted (the other targets use it too)."""
    try:
        asyncio.run(listen(routes))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    serve([web.get("/log", log), web.get("/chunked", chunked),
           web.get("/empty", empty), web.get("/notmod", notmod),
           web.route("*", "/echo", echo), web.post("/digest", digest)])
