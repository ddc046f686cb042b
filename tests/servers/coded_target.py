#!/usr/bin/env python3
"""A target that answers in every content coding, encoded by the reference libraries (zlib, PyPI
brotli and zstandard), for the decoding and extraction tests. aiohttp serves it.

  /pretty?id=N                    200, the JSON document of N indented (a body of many lines)
  /doc?id=N&coding=C[&chunked=1]  200, the JSON document of N (below), encoded with C:
                                  gzip, deflate (zlib), rawdeflate (sent as `deflate`), br,
                                  zstd, identity, or a stack such as gzip,br (applied in order)
  /bomb                           200, gzip: 250 KB on the wire, 256 MiB decoded
  /corrupt?id=N                   200, Content-Encoding: gzip, a gzip header then garbage
  /unknown?id=N                   200, Content-Encoding: compress, the document as is
  /text?id=N                      200, text/plain `id N is here`, not JSON
  /echo                           200, the request's headers as JSON
  /big?id=N&mb=M[&coding=gzip]    200, chunked: M MB (10^6 bytes) of big_body(N, M), sent in
                                  64 KiB writes; gzip-coded (compressed as one stream) if asked
  /stall?coding=C&window=W        200, Content-Length: ~15 MB that decodes with a window of 2^W
                                  (zstd, no content size; br, lgwin W), sent but for its last 64
                                  bytes, then nothing for 60 s: each answer holds its window

The document of N:
  {"id":N,"user":{"name":"user N","admin":B},"items":[{"id":10N},{"id":10N+1},{"id":10N+2}],
   "score":N.5,"pad":"ab" * (N % 40)}    with B true for even N, false for odd

Prints "listening on http://127.0.0.1:PORT" once it accepts connections.
"""
import asyncio
import gzip
import json
import zlib

import brotli
import zstandard
from aiohttp import web

from aiohttp_target import serve  # beside this file


def document(n):
    doc = {
        "id": n,
        "user": {"name": f"user {n}", "admin": n % 2 == 0},
        "items": [{"id": 10 * n + k} for k in range(3)],
        "score": n + 0.5,
        "pad": "ab" * (n % 40),
    }
    return json.dumps(doc, separators=(",", ":")).encode()


def encode(data, coding):
    if coding == "gzip":
        return gzip.compress(data)
    if coding == "deflate":
        return zlib.compress(data)
    if coding == "rawdeflate":
        c = zlib.compressobj(wbits=-15)
        return c.compress(data) + c.flush()
    if coding == "br":
        return brotli.compress(data)
    if coding == "zstd":
        return zstandard.ZstdCompressor().compress(data)
    if coding == "identity":
        return data
    raise ValueError(coding)


def ident(request):
    return int(request.query.get("id", "0"))


async def send(request, body, coding_header, chunked=False):
    if not chunked:
        headers = {"Content-Encoding": coding_header} if coding_header else {}
        return web.Response(body=body, headers=headers, content_type="application/json")
    resp = web.StreamResponse()
    if coding_header:
        resp.headers["Content-Encoding"] = coding_header
    resp.content_type = "application/json"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(0, len(body), 7):
        await resp.write(body[i : i + 7])
    await resp.write_eof()
    return resp


async def doc(request):
    codings = request.query.get("coding", "identity").split(",")
    body = document(ident(request))
    for coding in codings:
        body = encode(body, coding)
    header = ", ".join("deflate" if c == "rawdeflate" else c for c in codings if c != "identity")
    return await send(request, body, header, request.query.get("chunked") == "1")


BOMB = gzip.compress(b"\0" * (256 << 20), compresslevel=9)


async def bomb(request):
    return web.Response(body=BOMB, headers={"Content-Encoding": "gzip"})


async def corrupt(request):
    body = gzip.compress(document(ident(request)))[:10] + b"this is not deflate data" * 8
    return web.Response(body=body, headers={"Content-Encoding": "gzip"})


async def unknown(request):
    return web.Response(body=document(ident(request)), headers={"Content-Encoding": "compress"})


async def pretty(request):
    doc = json.loads(document(ident(request)))
    return web.Response(body=json.dumps(doc, indent=2).encode(), content_type="application/json")


async def text(request):
    return web.Response(text=f"id {ident(request)} is here")


def big_body(n, mb):
    """M MB that differ per id: a line naming the id, repeated."""
    line = f"id {n} big body line\n".encode()
    size = mb * 1_000_000
    return (line * (size // len(line) + 1))[:size]


async def big(request):
    body = big_body(ident(request), int(request.query.get("mb", "1")))
    coding = request.query.get("coding", "identity")
    if coding == "gzip":
        body = gzip.compress(body, compresslevel=1)
    resp = web.StreamResponse()
    if coding == "gzip":
        resp.headers["Content-Encoding"] = "gzip"
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(0, len(body), 64 << 10):
        await resp.write(body[i : i + (64 << 10)])
    await resp.write_eof()
    return resp


_stalled = {}


def stalled_body(coding, window):
    if (coding, window) not in _stalled:
        data = b"".join(b"%09d,%s\n" % (i, b"abcdefgh"[i % 8:] * 3) for i in range(400_000))
        data = data[:15_000_000]
        if coding == "zstd":
            params = zstandard.ZstdCompressionParameters.from_level(
                3, window_log=window, write_content_size=False)
            blob = zstandard.ZstdCompressor(compression_params=params).compress(data)
        else:
            blob = brotli.compress(data, lgwin=window, quality=5)
        _stalled[coding, window] = blob
    return _stalled[coding, window]


async def stall(request):
    coding = request.query["coding"]
    blob = stalled_body(coding, int(request.query["window"]))
    resp = web.StreamResponse()
    resp.headers["Content-Encoding"] = coding
    resp.content_length = len(blob)
    await resp.prepare(request)
    await resp.write(blob[:-64])
    await asyncio.sleep(60)
    return resp


async def echo(request):
    return web.json_response({"headers": [[k, v] for k, v in request.headers.items()]})


if __name__ == "__main__":
    serve([web.get("/doc", doc), web.get("/bomb", bomb), web.get("/corrupt", corrupt),
           web.get("/unknown", unknown), web.get("/text", text), web.get("/echo", echo),
           web.get("/pretty", pretty), web.get("/big", big), web.get("/stall", stall)])
