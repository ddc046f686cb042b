"""Checks config/k8s/indexed-job.yaml against the real Kubernetes API types.

The official client deserializes each document into its model class (V1Job, V1PersistentVolumeClaim)
and silently drops any field whose name or place is wrong, so every assertion on a deserialized
field proves the manifest spells it where the API expects it. Prints one line per check; exits 1 on
the first failure. Usage: check_k8s_job.py MANIFEST (written against kubernetes==37.0.2, which
tests/setup.sh installs: the client's deserialize() signature changes between major versions)
"""
import json
import sys

import yaml
from kubernetes.client import ApiClient


def load(path):
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    api = ApiClient()
    models = {"Job": "V1Job", "PersistentVolumeClaim": "V1PersistentVolumeClaim"}
    return {d["kind"]: api.deserialize(json.dumps(d), models[d["kind"]], "application/json") for d in docs}


def check(what, ok):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        sys.exit(1)


def main(path):
    objects = load(path)
    job, pvc = objects["Job"], objects["PersistentVolumeClaim"]
    spec = job.spec
    check("kind Job, apiVersion batch/v1", job.kind == "Job" and job.api_version == "batch/v1")
    check("completionMode Indexed", spec.completion_mode == "Indexed")
    check("completions = parallelism", spec.completions == spec.parallelism and spec.completions >= 1)
    check("backoffLimitPerIndex set", (spec.backoff_limit_per_index or 0) >= 1)
    pod = spec.template.spec
    check("restartPolicy Never (needed by backoffLimitPerIndex)", pod.restart_policy == "Never")
    (container,) = pod.containers
    env = {e.name: e.value for e in container.env}
    check("RINGSCRAPE_NODE_COUNT = completions", env.get("RINGSCRAPE_NODE_COUNT") == str(spec.completions))
    check("RINGSCRAPE_URL has {id}", "{id}" in env.get("RINGSCRAPE_URL", ""))
    check("RINGSCRAPE_IDS set", ".." in env.get("RINGSCRAPE_IDS", ""))
    script = " ".join(container.command + container.args)
    check("open-files limit raised", 'ulimit -n "$RINGSCRAPE_NOFILE"' in script and int(env["RINGSCRAPE_NOFILE"]) > 1024)
    check("runs ringscrape run --resume", "exec ringscrape run" in script and "--resume" in script)
    check("one output file per index", "/results/part-{node}.csv" in script)
    mounts = {m.name: m.mount_path for m in container.volume_mounts}
    check("results volume mounted at /results", mounts.get("results") == "/results")
    volumes = {v.name: v for v in pod.volumes}
    claim = volumes["results"].persistent_volume_claim
    check("results volume is the claim", claim is not None and claim.claim_name == pvc.metadata.name)
    check("claim is ReadWriteMany", pvc.spec.access_modes == ["ReadWriteMany"])
    check("whole cores requested", container.resources.requests["cpu"] == container.resources.limits["cpu"])
    # Commented out in the manifest (io_uring allowed by config/k8s/seccomp-io-uring.json): checked
    # when a test uncomments it.
    profile = pod.security_context.seccomp_profile if pod.security_context else None
    if profile is not None:
        check(
            "seccompProfile Localhost profiles/seccomp-io-uring.json",
            profile.type == "Localhost" and profile.localhost_profile == "profiles/seccomp-io-uring.json",
        )
    print("manifest ok")


if __name__ == "__main__":
    main(sys.argv[1])
