#!/usr/bin/env python3
"""Fetches a Prometheus text endpoint and parses it with prometheus_client's own parser (what a
scraper would do); prints one JSON object: {"name{label=value,...}": value} for every sample."""
import json
import sys
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

text = urllib.request.urlopen(sys.argv[1], timeout=5).read().decode()
samples = {}
for family in text_string_to_metric_families(text):
    for s in family.samples:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
        samples[f"{s.name}{{{labels}}}"] = s.value
print(json.dumps(samples))
