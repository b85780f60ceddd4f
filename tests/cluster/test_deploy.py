#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Validates deploy/: what can be checked without Docker or Kubernetes.

- Every YAML document parses (python3-yaml) and has the fields the platform requires, plus
  the ones docs/deploy.md promises (probes, resources, PDB, Prometheus annotations, ...).
- The Dockerfile is multi-stage on Debian 12, runs as a non-root user, has a HEALTHCHECK on
  /v2/health/ready, and its CMD is the Deployment's command line minus the cluster flags.
- The command lines of the Dockerfile, the Deployment and the KServe runtime are run here with
  the real binary (paths mapped to a temp dir, loopback host, a free port) and must come up
  ready: the flags the containers use are the flags the binary takes.

Usage: test_deploy.py SOURCE_DIR QUIVER_BINARY
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

import yaml

SRC, BIN = sys.argv[1], sys.argv[2]
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)


def load(path):
    with open(os.path.join(SRC, path)) as f:
        docs = [d for d in yaml.safe_load_all(f) if d is not None]
    for d in docs:
        check("apiVersion" in d and "kind" in d and "name" in d.get("metadata", {}),
              f"{path}: every document has apiVersion, kind and metadata.name")
    return {d["kind"]: d for d in docs}


def dockerfile():
    text = open(os.path.join(SRC, "deploy/Dockerfile")).read()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    check(len(froms) >= 2, "Dockerfile is multi-stage")
    check(all(f.startswith("debian:12") for f in froms), "Dockerfile stages are Debian 12")
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    check(user and user[-1] not in ("root", "0"), "Dockerfile runs as a non-root user")
    check(re.search(r"^HEALTHCHECK .*\n?.*/v2/health/ready", text, re.M) is not None,
          "Dockerfile HEALTHCHECK on /v2/health/ready")
    entry = json.loads(re.search(r"^ENTRYPOINT\s+(\[.*\])", text, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD\s+(\[.*\])", text, re.M).group(1))
    return entry, cmd


def k8s():
    kinds = load("deploy/k8s/quiver.yaml")
    for k in ("ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget"):
        check(k in kinds, f"k8s: a {k}")
    dep = kinds["Deployment"]
    pod = dep["spec"]["template"]
    c = pod["spec"]["containers"][0]
    check(dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items(),
          "k8s: the Deployment's selector matches its pods")
    check(c["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready", "k8s: readiness probe")
    check(c["livenessProbe"]["httpGet"]["path"] == "/v2/health/live", "k8s: liveness probe")
    check("requests" in c.get("resources", {}), "k8s: resource requests")
    ann = pod["metadata"].get("annotations", {})
    check(ann.get("prometheus.io/scrape") == "true" and ann.get("prometheus.io/path") == "/metrics",
          "k8s: Prometheus scrape annotations")
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    check("/models" in mounts and mounts["/models"].get("readOnly"), "k8s: model volume")
    check(pod["spec"]["securityContext"].get("runAsNonRoot") is True, "k8s: runs as non-root")
    envs = {e["name"]: e for e in c["env"]}
    check("secretKeyRef" in envs.get("PGPASSWORD", {}).get("valueFrom", {}),
          "k8s: the PostgreSQL password comes from the Secret")
    check(any(v.get("secret", {}).get("secretName") == "quiver-secrets"
              for v in pod["spec"]["volumes"]), "k8s: tokens from the Secret")
    check(kinds["PodDisruptionBudget"]["spec"]["selector"] == dep["spec"]["selector"],
          "k8s: the PDB selects the Deployment's pods")
    return c["command"], c["args"]


def kserve():
    kinds = load("deploy/kserve/runtime.yaml")
    rt = kinds.get("ClusterServingRuntime")
    check(rt is not None, "kserve: a ClusterServingRuntime")
    formats = {f["name"] for f in rt["spec"]["supportedModelFormats"]}
    check({"xgboost", "onnx"} <= formats, "kserve: xgboost and onnx formats")
    check("v2" in rt["spec"]["protocolVersions"], "kserve: the v2 protocol")
    c = rt["spec"]["containers"][0]
    check(c["name"] == "kserve-container", "kserve: the container is kserve-container")
    isvc = load("deploy/kserve/inferenceservice.yaml").get("InferenceService")
    check(isvc is not None and isvc["spec"]["predictor"]["model"]["runtime"]
          == rt["metadata"]["name"], "kserve: the InferenceService uses the runtime")
    check(isvc["spec"]["predictor"]["model"]["protocolVersion"] == "v2", "kserve: isvc on v2")
    return c["command"], c["args"]


def run(argv, tmp, name):
    """Start argv (a container's command line, mapped onto tmp) and wait until it is ready."""
    repo = os.path.join(tmp, "models")
    mapping = {"/models": repo, "/mnt/models": repo, "/var/lib/quiver": os.path.join(tmp, name),
               "/tmp/quiver": os.path.join(tmp, name), "0.0.0.0": "127.0.0.1",
               "/usr/local/bin/quiver": BIN, "8000": "0", "8080": "0",
               "$(POD_NAME)": "pod-1", "$(QUIVER_STORE)": "sqlite:" + os.path.join(tmp, name + ".db"),
               "/etc/quiver/tokens": os.path.join(tmp, "tokens")}
    args = [mapping.get(a, a) for a in argv]
    port_file = os.path.join(tmp, name + ".port")
    os.makedirs(os.path.join(tmp, name), exist_ok=True)
    log = open(os.path.join(tmp, name + ".log"), "w")
    p = subprocess.Popen(args + ["--port-file", port_file], stdout=log, stderr=subprocess.STDOUT)
    ok = False
    deadline = time.time() + 90
    while time.time() < deadline and p.poll() is None:
        try:
            port = int(open(port_file).read())
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=5) as r:
                ok = r.status == 200
            if ok:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        p.wait(60)
    if not ok:
        print(open(os.path.join(tmp, name + ".log")).read(), file=sys.stderr)
    check(ok, f"{name}: the container's command line serves (ready) with the real binary")


def main():
    entry, cmd = dockerfile()
    kcmd, kargs = k8s()
    scmd, sargs = kserve()
    check(entry == kcmd == scmd, "the same entrypoint in the Dockerfile, Deployment and runtime")
    check(kargs[:len(cmd)] == cmd, "the Deployment's args start with the Dockerfile's CMD")
    tmp = tempfile.mkdtemp(prefix="qv-deploy-")
    try:
        shutil.copytree(os.path.join(SRC, "examples/models/fraud"),
                        os.path.join(tmp, "models/fraud"))
        with open(os.path.join(tmp, "tokens"), "w") as f:
            f.write("ops test-token admin\n")
        run(entry + cmd, tmp, "docker")
        run(kcmd + kargs, tmp, "k8s")
        run(scmd + sargs, tmp, "kserve")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if failures:
        print(f"{len(failures)} deploy check(s) failed", file=sys.stderr)
        return 1
    print("deploy: all checks passed")
    return 0


sys.exit(main())
