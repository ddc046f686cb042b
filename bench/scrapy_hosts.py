#!/usr/bin/env python3
"""The many-host job in scrapy, for bench/hosts.py: one scrapy process per core (scrapy runs on
one thread), each taking every PROCS-th host (so a host's download slot lives in one process),
with `CONCURRENT_REQUESTS` its share of the total, `CONCURRENT_REQUESTS_PER_DOMAIN` the requests
in flight per host and `DOWNLOAD_DELAY` = 1/RATE (not randomized) its pace per host;
AutoThrottle, retries, cookies, robots.txt and the telnet console off. Rows
(host,item,status,bytes,latency_ms,error) go to a CSV feed per process, concatenated after the
run.

    python3 bench/scrapy_hosts.py --hosts hosts.txt --items 10 --url 'http://{host}/item?i={item}' \
        --procs 2 --concurrency 256 --per-host 2 --rate 5 --out rows.csv
"""
import argparse
import subprocess
import sys
from urllib.parse import urlsplit

from common import HOST_ROW_FIELDS, host_job_args, join_parts


def crawl(a, part):
    import scrapy
    from scrapy.crawler import CrawlerProcess

    with open(a.hosts) as f:
        hosts = [line.strip() for line in f if line.strip()][part :: a.procs]

    class HostsSpider(scrapy.Spider):
        name = "hosts"

        async def start(self):
            for host in hosts:
                for item in range(a.items):
                    url = a.url.replace("{host}", host).replace("{item}", str(item))
                    yield scrapy.Request(url, cb_kwargs={"host": host, "item": item},
                                         errback=self.failed, dont_filter=True)

        def parse(self, response, host, item):
            latency = response.meta.get("download_latency", 0.0)
            yield {"host": host, "item": item, "status": response.status,
                   "bytes": len(response.body), "latency_ms": f"{latency * 1000:.3f}", "error": ""}

        def failed(self, failure):
            request = failure.request
            yield {"host": urlsplit(request.url).netloc, "item": request.cb_kwargs.get("item"),
                   "status": "", "bytes": 0, "latency_ms": "", "error": failure.type.__name__}

    process = CrawlerProcess(settings={
        "CONCURRENT_REQUESTS": max(1, a.concurrency // a.procs),
        "CONCURRENT_REQUESTS_PER_DOMAIN": a.per_host,
        "DOWNLOAD_DELAY": 1.0 / a.rate if a.rate else 0.0,
        "RANDOMIZE_DOWNLOAD_DELAY": False,
        "AUTOTHROTTLE_ENABLED": False,
        "RETRY_ENABLED": False,
        "COOKIES_ENABLED": False,
        "ROBOTSTXT_OBEY": False,
        "TELNETCONSOLE_ENABLED": False,
        "HTTPERROR_ALLOW_ALL": True,
        "LOG_LEVEL": "WARNING",
        "FEEDS": {f"{a.out}.part{part}": {"format": "csv", "fields": HOST_ROW_FIELDS, "overwrite": True,
                                          "item_export_kwargs": {"include_headers_line": False}}},
    })
    process.crawl(HostsSpider)
    process.start()


def main():
    p = host_job_args(__doc__.split("\n\n")[0])
    p.add_argument("--part", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.part is not None:
        crawl(a, a.part)
        return 0
    procs = [subprocess.Popen([sys.executable, __file__, *sys.argv[1:], "--part", str(k)])
             for k in range(a.procs)]
    if any([proc.wait() != 0 for proc in procs]):  # a list: wait for every one
        return 1
    join_parts(a.out, HOST_ROW_FIELDS, [f"{a.out}.part{k}" for k in range(a.procs)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
