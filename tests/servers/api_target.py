#!/usr/bin/env python3
"""An API with what real ones have and the demo target lacks: credentials that expire, and
lists that come in pages. aiohttp serves it.

Credentials (`--ttl S`, default 2: each lives S seconds from when it is issued):
  /token                    200, a new bearer token (text)
  /login                    POST user=…&password=secret: 200 with Set-Cookie session=…; else 403
  /log?id=N                 200 {"id":N} with a live token (Authorization: Bearer …) or session
                            cookie; else 401

Pages (`--pages-mod M`, default 21: key K has K % M pages; a chain of 0 pages answers one empty
page; `--delay-ms D`: each page answers after D ms). Every page is `{"items":[…],"next":…}`; the link to the next page is the same in the
three styles:
  /list/link?key=K&page=P   the next in a `Link: <…>; rel="next"` header (absolute URL)
  /list/json?key=K&page=P   the next as the `next` field: a relative URL, or null on the last
  /list/cursor?key=K&after=C  the next as `next_cursor` (an opaque string), "" on the last
  /list/loop?key=K&page=P   a chain whose page 3 points back to page 1 (loops for ever);
                            with &back=B (before &page), to page B
  /list/broken?key=K&page=P page 2 answers 500

  /stats                    {"issued": tokens and sessions issued, "unauthorized": 401s,
                             "pages": {"K/P": times fetched}}

Prints "listening on http://127.0.0.1:PORT" once it accepts connections.
"""
import argparse
import asyncio
import base64
import secrets
import time
from collections import Counter

from aiohttp import web

from aiohttp_target import serve  # beside this file

parser = argparse.ArgumentParser()
parser.add_argument("--ttl", type=float, default=2.0)
parser.add_argument("--pages-mod", type=int, default=21)
parser.add_argument("--delay-ms", type=float, default=0.0, help="each page answers after this")
ARGS = parser.parse_args()

LIVE = {}  # credential -> expiry (monotonic)
STATS = {"issued": 0, "unauthorized": 0}
FETCHED = Counter()


def issue():
    credential = "tok-" + secrets.token_hex(12)
    LIVE[credential] = time.monotonic() + ARGS.ttl
    STATS["issued"] += 1
    return credential


def live(credential):
    return credential is not None and LIVE.get(credential, 0) > time.monotonic()


async def token(_request):
    return web.Response(text=issue())


async def login(request):
    form = await request.post()
    if form.get("password") != "secret":
        return web.Response(status=403, text="wrong password")
    response = web.Response(text="welcome")
    response.set_cookie("session", issue())
    return response


async def log(request):
    auth = request.headers.get("Authorization", "")
    bearer = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
    if not (live(bearer) or live(request.cookies.get("session"))):
        STATS["unauthorized"] += 1
        return web.json_response({"error": "expired"}, status=401)
    return web.json_response({"id": int(request.query.get("id", "0"))})


def pages_of(key):
    return int(key) % ARGS.pages_mod


def page_items(key, page):
    return [f"{key}-{page}-{i}" for i in range(3)] if pages_of(key) else []


async def counted(key, page):
    FETCHED[f"{key}/{page}"] += 1
    if ARGS.delay_ms:
        await asyncio.sleep(ARGS.delay_ms / 1000)


async def list_link(request):
    key, page = request.query["key"], int(request.query.get("page", "0"))
    await counted(key, page)
    response = web.json_response({"items": page_items(key, page)})
    if page + 1 < pages_of(key):
        url = request.url.with_query(key=key, page=str(page + 1))
        response.headers["Link"] = f'<{url}>; rel="next", <{request.url}>; rel="self"'
    return response


async def list_json(request):
    key, page = request.query["key"], int(request.query.get("page", "0"))
    await counted(key, page)
    more = page + 1 < pages_of(key)
    following = f"json?key={key}&page={page + 1}" if more else None
    return web.json_response({"items": page_items(key, page), "next": following})


def cursor_of(page):
    return base64.urlsafe_b64encode(f"page:{page}".encode()).decode().rstrip("=")


def page_of(cursor):
    padded = cursor + "=" * (-len(cursor) % 4)
    return int(base64.urlsafe_b64decode(padded).decode().split(":")[1])


async def list_cursor(request):
    key = request.query["key"]
    after = request.query.get("after")
    page = page_of(after) if after else 0
    await counted(key, page)
    more = page + 1 < pages_of(key)
    return web.json_response({"items": page_items(key, page),
                              "next_cursor": cursor_of(page + 1) if more else ""})


async def list_loop(request):
    key, page = request.query["key"], int(request.query.get("page", "0"))
    back = request.query.get("back")
    await counted(key, page)
    following = int(back or "1") if page == 3 else page + 1
    extra = f"&back={back}" if back else ""
    return web.json_response({"items": [], "next": f"loop?key={key}{extra}&page={following}"})


async def list_broken(request):
    key, page = request.query["key"], int(request.query.get("page", "0"))
    await counted(key, page)
    if page == 2:
        return web.json_response({"error": "boom"}, status=500)
    return web.json_response({"items": [], "next": f"broken?key={key}&page={page + 1}"})


async def stats(_request):
    return web.json_response({**STATS, "pages": dict(FETCHED)})


if __name__ == "__main__":
    serve([web.get("/token", token), web.post("/login", login), web.get("/log", log),
           web.get("/list/link", list_link), web.get("/list/json", list_json),
           web.get("/list/cursor", list_cursor), web.get("/list/loop", list_loop),
           web.get("/list/broken", list_broken), web.get("/stats", stats)])
