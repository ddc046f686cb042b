#!/usr/bin/env python3
"""A quota server, for the rate-limit header tests: a fixed window of Q requests per W seconds
(windows aligned to multiples of W in Unix time, as GitHub's are), counted over all clients;
a request beyond the quota is answered 429 (with Retry-After). Every answer says the quota in
the headers of one style:

  --style draft08   RateLimit-Policy: "fixed";q=Q;w=W   and   RateLimit: "fixed";r=R;t=T
  --style github    X-RateLimit-Limit: Q, X-RateLimit-Remaining: R, X-RateLimit-Reset: the
                    window's end in Unix seconds, X-RateLimit-Used
  --style draft07   RateLimit-Limit: Q, RateLimit-Remaining: R, RateLimit-Reset: T
  --style none      no rate-limit header (only Retry-After on a 429)

R: requests left in the window after this one; T: seconds to the window's end, rounded up.

  /item?id=N   200 {"id":N}, or 429
  /stats       200 {"windows": [[window start, answered 200, answered 429, host], ...]} (not
               counted); host is "" unless --per-host

--per-host: a quota of its own for each Host the requests name (as an API behind one address
for many names counts).

Prints "listening on http://127.0.0.1:PORT" once it accepts connections.
"""
import argparse
import json
import math
import time

from aiohttp import web

from aiohttp_target import serve  # beside this file


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--style", choices=["draft08", "github", "draft07", "none"], required=True)
    parser.add_argument("--quota", type=int, default=100)
    parser.add_argument("--window", type=int, default=2)
    parser.add_argument("--per-host", action="store_true")
    args = parser.parse_args()
    quota, window = args.quota, args.window
    # (host, window start) → [answered 200, answered 429]
    windows = {}

    def headers(remaining, end, now):
        left = max(0, math.ceil(end - now))
        if args.style == "draft08":
            return {"RateLimit-Policy": f'"fixed";q={quota};w={window}',
                    "RateLimit": f'"fixed";r={remaining};t={left}'}
        if args.style == "github":
            return {"X-RateLimit-Limit": str(quota), "X-RateLimit-Remaining": str(remaining),
                    "X-RateLimit-Reset": str(end), "X-RateLimit-Used": str(quota - remaining)}
        if args.style == "draft07":
            return {"RateLimit-Limit": str(quota), "RateLimit-Remaining": str(remaining),
                    "RateLimit-Reset": str(left)}
        return {}

    async def item(request):
        now = time.time()
        start = int(now // window) * window
        end = start + window
        host = request.headers.get("Host", "") if args.per_host else ""
        counts = windows.setdefault((host, start), [0, 0])
        used = counts[0] + 1
        if used > quota:
            counts[1] += 1
            said = headers(0, end, now)
            said["Retry-After"] = str(max(1, math.ceil(end - now)))
            return web.Response(status=429, headers=said, text="over quota\n")
        counts[0] = used
        body = '{"id":%s}' % request.query.get("id", "null")
        return web.Response(body=body.encode(), content_type="application/json",
                            headers=headers(quota - used, end, now))

    async def stats(_request):
        rows = [[start, ok, refused, host]
                for (host, start), (ok, refused) in sorted(windows.items())]
        return web.Response(text=json.dumps({"windows": rows}), content_type="application/json")

    serve([web.get("/item", item), web.get("/stats", stats)])


if __name__ == "__main__":
    main()
