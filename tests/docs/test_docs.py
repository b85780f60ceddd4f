#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Runs the examples of README.md and docs/*.md that are marked for testing.

A marker is an HTML comment on the line right before a fenced block (it does not
show when the Markdown is rendered):

  <!-- doc-test -->            the ```sh block below runs as one bash script
                               (set -e -o pipefail); it must exit 0
  <!-- doc-test exit=N -->     ... and must exit N
  <!-- doc-test output -->     the ```json block below must match the last JSON
                               value the previous block printed: every key it shows
                               is there, strings, integers and booleans are equal,
                               other numbers within 1e-6 (relative), arrays as long
  <!-- doc-test output keys --> the same, but only the keys are compared
  <!-- doc-test put PATH -->   the ```json block below is a document sent with
                               PUT to PATH; the answer must be 2xx
  <!-- doc-test transcript [keys] -->
                               the block below is a terminal transcript: each
                               "$ " line (and its continuation lines, until the
                               command is complete) runs and must exit 0; the
                               lines after it, up to the next "$ ", are its
                               output, compared as for output (or output keys)

Each file runs, in order, against its own fresh server (`quiver serve`) on an
ephemeral port, serving a scratch copy of examples/models, from a scratch
directory laid out like the top of the source tree (examples/models,
examples/requests), with the quiver command on PATH and QUIVER_URL set.
"localhost:8000" and "127.0.0.1:8000" in a block are the server's address. In
the scripts, curl fails on an HTTP error status (--fail-with-body), so an
example that gets a 4xx or 5xx fails unless it is marked with its exit status
(curl's is 22).

Usage: test_docs.py SOURCE_DIR QUIVER_BINARY [FILE.md ...]
"""
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

MARK = re.compile(r"^<!--\s*doc-test(?P<args>[^>]*?)\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>[A-Za-z0-9_-]*)\s*$")
ADDR = re.compile(r"\b(localhost|127\.0\.0\.1):8000\b")

PREAMBLE = """set -e -o pipefail
curl() {
  local a
  for a in "$@"; do
    case "$a" in --fail|--fail-with-body|-[a-zA-Z]*f*) command curl "$@"; return;; esac
  done
  command curl --fail-with-body "$@"
}
"""


class Block:
    def __init__(self, path, line, args, lang, text):
        self.path, self.line, self.args, self.lang, self.text = path, line, args, lang, text

    def where(self):
        return "%s:%d" % (self.path, self.line)


def marked_blocks(path):
    """The marked blocks of a Markdown file, in order."""
    blocks = []
    lines = open(path, encoding="utf-8").read().split("\n")
    i = 0
    while i < len(lines):
        m = MARK.match(lines[i])
        if not m:
            i += 1
            continue
        args = m.group("args").split()
        if i + 1 >= len(lines) or not FENCE.match(lines[i + 1]):
            raise SystemExit("%s:%d: a doc-test marker must be right before a fence" % (path, i + 1))
        kind = args[0] if args else "exit=0"
        if not (kind in ("output", "put", "transcript") or re.match(r"^exit=\d+$", kind)) or \
                (kind == "put" and len(args) != 2):
            raise SystemExit("%s:%d: unknown doc-test marker: %s" % (path, i + 1, lines[i]))
        lang = FENCE.match(lines[i + 1]).group("lang")
        j = i + 2
        body = []
        while j < len(lines) and not lines[j].startswith("```"):
            body.append(lines[j])
            j += 1
        if j >= len(lines):
            raise SystemExit("%s:%d: unterminated fence" % (path, i + 2))
        blocks.append(Block(path, i + 2, args, lang, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def last_json(text):
    """The last JSON value in text (values may follow each other without separators)."""
    dec = json.JSONDecoder()
    i, last = 0, None
    while i < len(text):
        while i < len(text) and text[i] in " \t\r\n":
            i += 1
        if i >= len(text):
            break
        try:
            last, i = dec.raw_decode(text, i)
        except ValueError:
            nl = text.find("\n", i)
            if nl < 0:
                break
            i = nl + 1
    return last


def compare(want, got, keys_only, where="$"):
    """Problems found comparing the documented value with the real one. With keys_only, a
    null value stands for any (a figure not known yet)."""
    if keys_only and got is None:
        return []
    if isinstance(want, dict):
        if not isinstance(got, dict):
            return ["%s: expected an object, got %r" % (where, got)]
        out = []
        for k, v in want.items():
            if k not in got:
                out.append("%s: no key %r" % (where, k))
            else:
                out += compare(v, got[k], keys_only, "%s.%s" % (where, k))
        return out
    if isinstance(want, list):
        if not isinstance(got, list):
            return ["%s: expected an array, got %r" % (where, got)]
        if keys_only:
            if want and got:
                return compare(want[0], got[0], keys_only, where + "[0]")
            return []
        if len(want) != len(got):
            return ["%s: %d elements, expected %d" % (where, len(got), len(want))]
        out = []
        for n, (a, b) in enumerate(zip(want, got)):
            out += compare(a, b, keys_only, "%s[%d]" % (where, n))
        return out
    if keys_only:
        return []
    if isinstance(want, bool) or want is None or isinstance(want, str):
        return [] if want == got else ["%s: %r, expected %r" % (where, got, want)]
    if isinstance(want, int) and isinstance(got, int):
        return [] if want == got else ["%s: %r, expected %r" % (where, got, want)]
    if isinstance(want, (int, float)) and isinstance(got, (int, float)):
        if math.isclose(float(want), float(got), rel_tol=1e-6, abs_tol=1e-9):
            return []
        return ["%s: %r, expected %r (within 1e-6)" % (where, got, want)]
    return ["%s: %r, expected %r" % (where, got, want)]


class Server:
    def __init__(self, src, binary, scratch):
        self.scratch = scratch
        os.makedirs(os.path.join(scratch, "examples"))
        for d in ("models", "requests"):
            shutil.copytree(os.path.join(src, "examples", d), os.path.join(scratch, "examples", d))
        self.log_path = os.path.join(scratch, "server.log")
        port_file = os.path.join(scratch, "port")
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [binary, "serve", "--repo", "examples/models", "--data", "data", "--port", "0",
             "--port-file", port_file, "--workers", "2", "--http-threads", "2"],
            cwd=scratch, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while not os.path.exists(port_file):
            if self.proc.poll() is not None or time.time() > deadline:
                self.fail_start("quiver serve did not start")
            time.sleep(0.05)
        self.port = int(open(port_file).read().strip())
        self.base = "http://127.0.0.1:%d" % self.port
        # Ready, and no version still loading.
        while True:
            if time.time() > deadline:
                self.fail_start("the example repository did not finish loading")
            try:
                idx = json.loads(self.get("/v2/repository/index"))
                if idx and all(v.get("state") not in ("LOADING", "UNLOADED") for v in idx):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)

    def fail_start(self, msg):
        self.stop()
        sys.stderr.write(open(self.log_path).read())
        raise SystemExit(msg)

    def get(self, path):
        with urllib.request.urlopen(self.base + path, timeout=30) as r:
            return r.read().decode()

    def put(self, path, body):
        req = urllib.request.Request(self.base + path, data=body.encode(), method="PUT",
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def transcript(text):
    """[(command, documented output)] of a transcript block."""
    lines = text.rstrip("\n").split("\n")
    pairs, i = [], 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise ValueError("line %d of the transcript is not a command: %r" % (i + 1, lines[i]))
        cmd = [lines[i][2:]]
        i += 1
        while subprocess.run(["bash", "-n", "-c", "\n".join(cmd)], stderr=subprocess.DEVNULL)\
                .returncode != 0 and i < len(lines):
            cmd.append(lines[i])
            i += 1
        out = []
        while i < len(lines) and not lines[i].startswith("$ "):
            out.append(lines[i])
            i += 1
        pairs.append(("\n".join(cmd) + "\n", "\n".join(out).strip()))
    return pairs


def run_script(text, port, scratch, env):
    """Runs a script of a doc; (exit status, stdout, stderr)."""
    script = PREAMBLE + ADDR.sub("127.0.0.1:%d" % port, text)
    try:
        p = subprocess.run(["bash", "-c", script], cwd=scratch, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=180)
        return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")
    except subprocess.TimeoutExpired:
        return -1, "", "timed out after 180 s"


def run_file(src, binary, path):
    blocks = marked_blocks(path)
    if not blocks:
        return 0, 0
    rel = os.path.relpath(path, src)
    scratch = tempfile.mkdtemp(prefix="qv-docs-")
    failures = 0
    srv = None
    try:
        srv = Server(src, binary, scratch)
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(os.path.abspath(binary)) + os.pathsep + env.get("PATH", "")
        env["QUIVER_URL"] = srv.base
        env.pop("QUIVER_TOKEN", None)
        last_out = ""
        for b in blocks:
            where = "%s:%d" % (rel, b.line)
            if b.args and b.args[0] == "output":
                keys_only = len(b.args) > 1 and b.args[1] == "keys"
                try:
                    want = json.loads(b.text)
                except ValueError as e:
                    print("FAIL %s: the documented output is not JSON: %s" % (where, e))
                    failures += 1
                    continue
                got = last_json(last_out)
                problems = compare(want, got, keys_only) if got is not None else [
                    "the example printed no JSON: %r" % last_out[-500:]]
                if problems:
                    failures += 1
                    print("FAIL %s: output differs from the documented one:\n  %s" %
                          (where, "\n  ".join(problems[:10])))
                else:
                    print("ok   %s: output" % where)
                continue
            if b.args and b.args[0] == "put":
                status, body = srv.put(b.args[1], b.text)
                if 200 <= status < 300:
                    print("ok   %s: PUT %s" % (where, b.args[1]))
                else:
                    failures += 1
                    print("FAIL %s: PUT %s answered %d: %s" % (where, b.args[1], status, body))
                last_out = body
                continue
            if b.args and b.args[0] == "transcript":
                keys_only = len(b.args) > 1 and b.args[1] == "keys"
                try:
                    pairs = transcript(b.text)
                except ValueError as e:
                    failures += 1
                    print("FAIL %s: %s" % (where, e))
                    continue
                for cmd, doc_out in pairs:
                    rc, out, err = run_script(cmd, srv.port, scratch, env)
                    problems = [] if rc == 0 else ["exit %d: %s" % (rc, (out + err)[-2000:])]
                    if rc == 0 and doc_out:
                        try:
                            want = json.loads(doc_out)
                        except ValueError as e:
                            want, problems = None, ["the documented output is not JSON: %s" % e]
                        got = last_json(out)
                        if want is not None:
                            problems = compare(want, got, keys_only) if got is not None else [
                                "the command printed no JSON: %r" % out[-500:]]
                    if problems:
                        failures += 1
                        print("FAIL %s: %s\n  %s" % (where, cmd.split("\n")[0],
                                                      "\n  ".join(problems[:10])))
                    else:
                        print("ok   %s: %s" % (where, cmd.split("\n")[0][:70]))
                    last_out = out
                continue
            want_exit = 0
            for a in b.args:
                if a.startswith("exit="):
                    want_exit = int(a[5:])
            rc, out, err = run_script(b.text, srv.port, scratch, env)
            last_out = out
            if rc != want_exit:
                failures += 1
                print("FAIL %s: exit %d, expected %d\n--- script\n%s--- stdout\n%s\n--- stderr\n%s" %
                      (where, rc, want_exit, b.text, out[-3000:], err[-3000:]))
            else:
                print("ok   %s: %s" % (where, b.text.strip().split("\n")[0][:70]))
    finally:
        if srv:
            srv.stop()
            if failures:
                sys.stdout.write("--- server log (%s)\n%s" % (rel, open(srv.log_path).read()[-6000:]))
        shutil.rmtree(scratch, ignore_errors=True)
    return len(blocks), failures


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    src, binary = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    files = sys.argv[3:] or (
        [os.path.join(src, "README.md")] +
        sorted(os.path.join(src, "docs", f) for f in os.listdir(os.path.join(src, "docs"))
               if f.endswith(".md")))
    total = failed = 0
    for f in files:
        n, bad = run_file(src, binary, os.path.abspath(f))
        total += n
        failed += bad
    print("docs: %d marked blocks, %d failed" % (total, failed))
    if total == 0:
        print("docs: no marked blocks found")
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
