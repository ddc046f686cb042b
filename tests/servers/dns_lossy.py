#!/usr/bin/env python3
"""A DNS server for the DNS scale tests: a wildcard zone `*.test` answered with one address,
dropping a share of the queries at random, counting the queries each name got.

  dns_lossy.py --listen 127.0.0.53 --addr 127.0.0.1 --drop 0.2 --ttl 300 --counts FILE
               [--overrides FILE]

A name whose first label starts with `nx` does not exist (NXDOMAIN with an SOA whose minimum is
--negative-ttl, RFC 2308). AAAA queries get an empty answer (NOERROR, the SOA in authority).
--overrides: lines `NAME TTL ADDR`, read again whenever the file changes, answer those names
with that address and TTL. On SIGTERM the counts ({"name": queries}, dropped ones included)
are written to --counts and the server exits. It prints `listening` once the socket is bound.
"""
import argparse
import json
import os
import random
import signal
import socket
import sys

from dnslib import AAAA, QTYPE, RCODE, RR, SOA, A, DNSRecord

ZONE = "test."


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", default="127.0.0.53")
    p.add_argument("--addr", default="127.0.0.1")
    p.add_argument("--drop", type=float, default=0.0)
    p.add_argument("--ttl", type=int, default=300)
    p.add_argument("--negative-ttl", type=int, default=60)
    p.add_argument("--counts", required=True)
    p.add_argument("--overrides")
    a = p.parse_args()
    counts = {}
    overrides = {}
    seen_mtime = [None]

    def read_overrides():
        if not a.overrides:
            return
        try:
            mtime = os.stat(a.overrides).st_mtime_ns
        except FileNotFoundError:
            return
        if mtime == seen_mtime[0]:
            return
        seen_mtime[0] = mtime
        overrides.clear()
        with open(a.overrides) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    overrides[parts[0].rstrip(".").lower() + "."] = (int(parts[1]), parts[2])

    def stop(*_):
        with open(a.counts + ".tmp", "w") as f:
            json.dump(counts, f)
        os.replace(a.counts + ".tmp", a.counts)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    sock.bind((a.listen, 53))
    print("listening", flush=True)
    soa = SOA("ns.test.", "admin.test.", (1, 3600, 600, 86400, a.negative_ttl))
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            query = DNSRecord.parse(data)
        except Exception:
            continue
        name = str(query.q.qname).lower()
        counts[name] = counts.get(name, 0) + 1
        if random.random() < a.drop:
            continue
        read_overrides()
        reply = query.reply()
        if not name.endswith(ZONE) or name.split(".")[0].startswith("nx"):
            reply.header.rcode = RCODE.NXDOMAIN
            reply.add_auth(RR(ZONE, QTYPE.SOA, rdata=soa, ttl=a.negative_ttl))
        elif query.q.qtype == QTYPE.A:
            ttl, addr = overrides.get(name, (a.ttl, a.addr))
            reply.add_answer(RR(query.q.qname, QTYPE.A, rdata=A(addr), ttl=ttl))
        else:
            reply.add_auth(RR(ZONE, QTYPE.SOA, rdata=soa, ttl=a.negative_ttl))
        sock.sendto(reply.pack(), peer)


if __name__ == "__main__":
    main()
