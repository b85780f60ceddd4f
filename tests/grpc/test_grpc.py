#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The KServe v2 gRPC service (docs/grpc.md) against the real binary.

Stubs are generated at test time from proto/grpc_predict_v2.proto with
python3-grpc-tools into a temporary directory; the servers run on ephemeral
ports (--port 0, --grpc-port 0) with the `test` backend. Every call that can
also be made over REST is made there too where the two must agree: the same
version answers, the same error text comes back.

Usage: test_grpc.py SOURCE_DIR QUIVER_BINARY
"""
import concurrent.futures
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import grpc

SRC, BIN = sys.argv[1], sys.argv[2]
TMP = tempfile.mkdtemp(prefix="qv-grpc-")
failures = []
servers = []  # killed at exit if a check raised before stopping them


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what, file=sys.stderr)
    return cond


# ---- Stubs ----
subprocess.run([sys.executable, "-m", "grpc_tools.protoc", "-I" + os.path.join(SRC, "proto"),
                "--python_out=" + TMP, "--grpc_python_out=" + TMP, "grpc_predict_v2.proto"],
               check=True)
sys.path.insert(0, TMP)
import grpc_predict_v2_pb2 as pb  # noqa: E402
import grpc_predict_v2_pb2_grpc as pbg  # noqa: E402


# ---- Servers ----
class Server:
    def __init__(self, name, models, *extra):
        self.dir = os.path.join(TMP, name)
        repo = os.path.join(self.dir, "repo")
        for model, (config, versions) in models.items():
            os.makedirs(os.path.join(repo, model))
            with open(os.path.join(repo, model, "config.json"), "w") as f:
                json.dump(dict({"backend": "test"}, **config), f)
            for v, artifact in versions.items():
                os.makedirs(os.path.join(repo, model, str(v)))
                with open(os.path.join(repo, model, str(v), "model.test"), "w") as f:
                    json.dump(artifact, f)
        servers.append(self)
        self.log = open(os.path.join(self.dir, "log"), "w")
        hport, gport = os.path.join(self.dir, "hport"), os.path.join(self.dir, "gport")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--enable-test-backend", "--repo", repo, "--data",
             os.path.join(self.dir, "data"), "--port", "0", "--port-file", hport,
             "--grpc-port", "0", "--grpc-port-file", gport, "--workers", "2",
             "--http-threads", "2", *extra], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while not (os.path.exists(hport) and os.path.exists(gport)):
            if self.proc.poll() is not None or time.time() > deadline:
                self.dump()
                raise SystemExit(f"{name}: the server did not start")
            time.sleep(0.05)
        self.http = int(open(hport).read().split()[0])
        self.grpc = int(open(gport).read().split()[0])
        self.channel = grpc.insecure_channel(f"127.0.0.1:{self.grpc}")
        self.stub = pbg.GRPCInferenceServiceStub(self.channel)

    def dump(self):
        self.log.flush()
        print(open(os.path.join(self.dir, "log")).read()[-6000:], file=sys.stderr)

    def rest(self, method, path, body=None, headers=None):
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}", data=data,
                                     method=method, headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def stop(self, expect_rc=0):
        self.channel.close()
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        if not check(rc == expect_rc, f"server exits {expect_rc} on SIGTERM (got {rc})"):
            self.dump()
        elif "ERROR: AddressSanitizer" in open(os.path.join(self.dir, "log")).read():
            check(False, "no sanitizer report in the server log")
            self.dump()


def lin(bias):
    return {"features": 2, "linear": True, "scale": 2.0, "bias": bias}


def infer_req(model="lin", rows=((1, 3), (-1, 0)), version="", raw=False, id="", dt="FP32"):
    req = pb.ModelInferRequest(model_name=model, model_version=version, id=id)
    t = req.inputs.add(name="input__0", datatype=dt, shape=[len(rows), len(rows[0])])
    flat = [x for r in rows for x in r]
    if raw:
        req.raw_input_contents.append(struct.pack(f"<{len(flat)}f", *flat))
    else:
        t.contents.fp32_contents.extend(flat)
    return req


def rest_body(rows=((1, 3), (-1, 0))):
    return {"inputs": [{"name": "input__0", "datatype": "FP32",
                        "shape": [len(rows), len(rows[0])], "data": [x for r in rows for x in r]}]}


def values(resp, i=0):
    if resp.raw_output_contents:
        raw = resp.raw_output_contents[i]
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    return list(resp.outputs[i].contents.fp32_contents)


TYPED = {
    "FP32": ("fp32_contents", "<4f", [1.5, -3.0, 0.25, 1024.0]),
    "FP64": ("fp64_contents", "<4d", [1.0, 3.0, -1.0, 0.5]),
    "INT8": ("int_contents", "<4b", [1, -3, 127, -128]),
    "INT16": ("int_contents", "<4h", [1, -3, 32767, -32768]),
    "INT32": ("int_contents", "<4i", [1, -3, 2 ** 31 - 1, -2 ** 31]),
    "INT64": ("int64_contents", "<4q", [1, -3, 2 ** 62, -2 ** 63]),
    "UINT8": ("uint_contents", "<4B", [1, 3, 255, 0]),
    "UINT16": ("uint_contents", "<4H", [1, 3, 65535, 0]),
    "UINT32": ("uint_contents", "<4I", [1, 3, 2 ** 32 - 1, 0]),
    "UINT64": ("uint64_contents", "<4Q", [1, 3, 2 ** 64 - 1, 0]),
    "BOOL": ("bool_contents", "<4?", [True, False, True, True]),
}


def rpc_call(fn, *args, **kw):
    try:
        return grpc.StatusCode.OK, fn(*args, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()


def rpc_error(fn, *args, **kw):
    try:
        fn(*args, **kw)
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def same_error(s, what, call, code, rest_call=None, contains=None):
    """A gRPC call fails with 'code'; REST's error text for the same request is
    the same (rest_call: (method, path, body[, headers]))."""
    got, msg = call()
    check(got == code, f"{what}: {code} (got {got}: {msg})")
    if contains is not None:
        check(contains in msg, f"{what}: the message names {contains!r} (got {msg!r})")
    if rest_call is not None:
        st, body = s.rest(*rest_call)
        check(isinstance(body, dict) and body.get("error") == msg,
              f"{what}: REST's message ({st} {body}) equals gRPC's ({msg!r})")


# ---- The main server ----
def main_server():
    s = Server("main", {
        "lin": ({}, {1: lin(1.0), 2: lin(11.0)}),
        "spare": ({}, {1: lin(0.0)}),
        "slow": ({"max_batch_size": 0}, {1: dict(lin(0.0), delay_us=1500000)}),
        "full": ({"queue_limit": 1, "instances": 1, "max_batch_size": 0},
                 {1: dict(lin(0.0), delay_us=300000)}),
        "late": ({}, {1: dict(lin(0.0), load_delay_ms=2500)}),
        "broken": ({}, {1: dict(lin(0.0), fail_rate=1.0)}),
        **{"echo_" + dt: ({}, {1: {"features": -1, "echo": dt}})
           for dt in list(TYPED) + ["BYTES", "FP16", "BF16"]},
    })
    st = s.stub

    # A version still loading: UNAVAILABLE with REST's text; ModelReady false.
    st.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="late"))
    loading = st.RepositoryModelLoad.future(pb.RepositoryModelLoadRequest(model_name="late"))
    deadline = time.time() + 30
    while not any(m.name == "late" and m.state == "LOADING"
                  for m in st.RepositoryIndex(pb.RepositoryIndexRequest()).models):
        if time.time() > deadline or loading.done():
            check(False, "late/1 was seen LOADING")
            break
        time.sleep(0.02)
    same_error(s, "version not READY", lambda: rpc_error(st.ModelInfer, infer_req("late", version="1")),
               grpc.StatusCode.UNAVAILABLE, ("POST", "/v2/models/late/versions/1/infer", rest_body()))
    r = st.ModelReady(pb.ModelReadyRequest(name="late", version="1"))
    check(r.ready is False, "ModelReady of a loading version: ready false")
    loading.result(timeout=30)
    check(st.ModelReady(pb.ModelReadyRequest(name="late", version="1")).ready,
          "ModelReady once loaded: ready true")

    # Health and metadata.
    check(st.ServerLive(pb.ServerLiveRequest()).live, "ServerLive: live")
    check(st.ServerReady(pb.ServerReadyRequest()).ready, "ServerReady: ready")
    m = st.ServerMetadata(pb.ServerMetadataRequest())
    check(m.name == "quiver" and "binary_tensor_data" in m.extensions, f"ServerMetadata: {m}")
    check(st.ModelReady(pb.ModelReadyRequest(name="lin")).ready, "ModelReady lin")
    check(st.ModelReady(pb.ModelReadyRequest(name="lin", version="1")).ready, "ModelReady lin/1")
    same_error(s, "ModelReady unknown model",
               lambda: rpc_error(st.ModelReady, pb.ModelReadyRequest(name="nope")),
               grpc.StatusCode.NOT_FOUND, ("GET", "/v2/models/nope/ready"))
    md = st.ModelMetadata(pb.ModelMetadataRequest(name="lin"))
    _, rest_md = s.rest("GET", "/v2/models/lin")
    check(md.name == "lin" and list(md.versions) == rest_md["versions"] and
          md.platform == rest_md["platform"], f"ModelMetadata head as REST's: {md}")
    check(len(md.inputs) == 1 and md.inputs[0].name == "input__0" and
          md.inputs[0].datatype == "FP32" and list(md.inputs[0].shape) == [-1, 2],
          f"ModelMetadata inputs: {md.inputs}")
    check(len(md.outputs) == 1 and md.outputs[0].name == rest_md["outputs"][0]["name"],
          "ModelMetadata outputs")
    md = st.ModelMetadata(pb.ModelMetadataRequest(name="lin", version="1"))
    check(md.name == "lin", "ModelMetadata with a version")
    same_error(s, "ModelMetadata unknown model",
               lambda: rpc_error(st.ModelMetadata, pb.ModelMetadataRequest(name="nope")),
               grpc.StatusCode.NOT_FOUND, ("GET", "/v2/models/nope"))

    # ModelInfer, typed and raw, by version; id and model_version echoed.
    for raw in (False, True):
        r = st.ModelInfer(infer_req(version="1", raw=raw, id="req-7"))
        check(r.model_name == "lin" and r.model_version == "1" and r.id == "req-7",
              f"ModelInfer raw={raw}: name, version and id ({r.model_name}, {r.model_version}, {r.id})")
        check(values(r) == [5.0, 0.0], f"ModelInfer raw={raw}: 2*mean(row)+1 (got {values(r)})")
        check(bool(r.raw_output_contents) == raw,
              f"ModelInfer raw={raw}: outputs raw exactly when the inputs were")
        check(r.outputs[0].name == "output__0" and r.outputs[0].datatype == "FP32" and
              list(r.outputs[0].shape) == [2], f"ModelInfer raw={raw}: output head {r.outputs[0]}")
    r = st.ModelInfer(infer_req(version="2"))
    check(r.model_version == "2" and values(r) == [15.0, 10.0], "ModelInfer version 2")
    check(r.id == "", "no id sent, none echoed")
    # binary_data_output and an output's binary_data choose raw outputs.
    req = infer_req(version="1")
    req.parameters["binary_data_output"].bool_param = True
    r = st.ModelInfer(req)
    check(len(r.raw_output_contents) == 1 and values(r) == [5.0, 0.0],
          "binary_data_output true: raw outputs")
    req = infer_req(version="1", raw=True)
    req.parameters["binary_data_output"].bool_param = False
    r = st.ModelInfer(req)
    check(not r.raw_output_contents and values(r) == [5.0, 0.0],
          "binary_data_output false: typed outputs for raw inputs")
    req = infer_req(version="1")
    o = req.outputs.add(name="output__0")
    o.parameters["binary_data"].bool_param = True
    r = st.ModelInfer(req)
    check(len(r.raw_output_contents) == 1, "outputs[].parameters.binary_data true: raw outputs")
    req = infer_req(version="1")
    req.outputs.add(name="nope")
    same_error(s, "unknown output", lambda: rpc_error(st.ModelInfer, req),
               grpc.StatusCode.INVALID_ARGUMENT,
               ("POST", "/v2/models/lin/versions/1/infer", dict(rest_body(), outputs=[{"name": "nope"}])),
               contains="nope")

    # Datatypes: FP16 and BF16 (raw only) are widened for the FP32 model and served.
    def half(x):
        return struct.pack("<e", x)

    def bf16(x):
        return struct.pack("<f", x)[2:]
    for dt, enc in (("FP16", half), ("BF16", bf16)):
        req = pb.ModelInferRequest(model_name="lin", model_version="1")
        req.inputs.add(name="input__0", datatype=dt, shape=[2, 2])
        req.raw_input_contents.append(b"".join(enc(x) for x in (1, 3, -1, 0)))
        r = rpc_error(st.ModelInfer, req)
        check(r[0] == grpc.StatusCode.OK, f"{dt} raw is served ({r})")
        if r[0] == grpc.StatusCode.OK:
            check(values(st.ModelInfer(req)) == [5.0, 0.0], f"{dt} raw: values")
        req = pb.ModelInferRequest(model_name="lin", model_version="1")
        req.inputs.add(name="input__0", datatype=dt, shape=[2, 2])
        same_error(s, f"{dt} typed", lambda: rpc_error(st.ModelInfer, req),
                   grpc.StatusCode.INVALID_ARGUMENT, contains="raw_input_contents")
    # Every datatype through the test backend's identity model ("echo"), typed
    # and raw: the values come back as sent, in the same form.
    for dt, (field, fmt, vals) in TYPED.items():
        for raw in (False, True):
            req = pb.ModelInferRequest(model_name="echo_" + dt, id=dt)
            t = req.inputs.add(name="input__0", datatype=dt, shape=[2, 2])
            if raw:
                req.raw_input_contents.append(struct.pack(fmt, *vals))
            else:
                getattr(t.contents, field).extend(vals)
            code, r = rpc_call(st.ModelInfer, req)
            if not check(code == grpc.StatusCode.OK, f"{dt} {'raw' if raw else 'typed'}: {code} {r}"):
                continue
            o = r.outputs[0]
            check(o.datatype == dt and list(o.shape) == [2, 2], f"{dt}: output head {o}")
            if raw:
                check(list(r.raw_output_contents) == [struct.pack(fmt, *vals)],
                      f"{dt} raw: the bytes come back ({r.raw_output_contents})")
            else:
                got = list(getattr(o.contents, field))
                check(got == vals, f"{dt} typed: {got} == {vals}")
        # A count that does not fit the shape is refused naming the field.
        req = pb.ModelInferRequest(model_name="echo_" + dt)
        t = req.inputs.add(name="input__0", datatype=dt, shape=[2, 2])
        getattr(t.contents, field).extend(vals[:3])
        same_error(s, f"{dt} typed, 3 values for 4", lambda: rpc_error(st.ModelInfer, req),
                   grpc.StatusCode.INVALID_ARGUMENT, contains=f"inputs[0].contents.{field}")
        # The FP32 model names the datatype it got.
        if dt == "FP32":
            continue
        req = pb.ModelInferRequest(model_name="lin", model_version="1")
        getattr(req.inputs.add(name="input__0", datatype=dt, shape=[2, 2]).contents,
                field).extend(vals)
        same_error(s, f"{dt} to the FP32 model", lambda: rpc_error(st.ModelInfer, req),
                   grpc.StatusCode.INVALID_ARGUMENT, contains=f"expects FP32, got {dt}")
    for dt, enc in (("FP16", half), ("BF16", bf16)):
        req = pb.ModelInferRequest(model_name="echo_" + dt)
        req.inputs.add(name="input__0", datatype=dt, shape=[1, 3])
        data = b"".join(enc(x) for x in (1.5, -2, 0.25))
        req.raw_input_contents.append(data)
        req.parameters["binary_data_output"].bool_param = False  # no typed list: raw all the same
        code, r = rpc_call(st.ModelInfer, req)
        check(code == grpc.StatusCode.OK and list(r.raw_output_contents) == [data],
              f"{dt} echo: raw bytes back ({code} {r})")
    req = pb.ModelInferRequest(model_name="lin", model_version="1")
    req.inputs.add(name="input__0", datatype="INT8", shape=[1, 2]).contents.int_contents.extend([1, 300])
    same_error(s, "INT8 out of range", lambda: rpc_error(st.ModelInfer, req),
               grpc.StatusCode.INVALID_ARGUMENT, contains="int_contents[1]: 300 is out of range")
    # BYTES: typed elements and the raw serialized form (4-byte length + bytes).
    elems = [b"ab", b"", b"\x00\xffz", "é".encode()]
    serial = b"".join(struct.pack("<I", len(x)) + x for x in elems)
    for raw in (False, True):
        req = pb.ModelInferRequest(model_name="echo_BYTES")
        t = req.inputs.add(name="input__0", datatype="BYTES", shape=[2, 2])
        if raw:
            req.raw_input_contents.append(serial)
        else:
            t.contents.bytes_contents.extend(elems)
        code, r = rpc_call(st.ModelInfer, req)
        if check(code == grpc.StatusCode.OK, f"BYTES {'raw' if raw else 'typed'}: {code} {r}"):
            got = list(r.raw_output_contents) if raw else list(r.outputs[0].contents.bytes_contents)
            check(got == ([serial] if raw else elems) and r.outputs[0].datatype == "BYTES",
                  f"BYTES {'raw' if raw else 'typed'} round trip: {got}")
    req = pb.ModelInferRequest(model_name="echo_BYTES")
    req.inputs.add(name="input__0", datatype="BYTES", shape=[1, 2]).contents.bytes_contents.append(b"x")
    same_error(s, "BYTES count", lambda: rpc_error(st.ModelInfer, req),
               grpc.StatusCode.INVALID_ARGUMENT, contains="bytes_contents")
    req = pb.ModelInferRequest(model_name="echo_BYTES")
    req.inputs.add(name="input__0", datatype="BYTES", shape=[1, 2])
    req.raw_input_contents.append(struct.pack("<I", 9) + b"abc")
    code, msg = rpc_error(st.ModelInfer, req)
    check(code == grpc.StatusCode.INVALID_ARGUMENT, f"BYTES raw with a length past its end: {code} {msg}")

    # Errors: REST's codes and texts.
    same_error(s, "unknown model", lambda: rpc_error(st.ModelInfer, infer_req("nope")),
               grpc.StatusCode.NOT_FOUND, ("POST", "/v2/models/nope/infer", rest_body()))
    same_error(s, "unknown version", lambda: rpc_error(st.ModelInfer, infer_req(version="9")),
               grpc.StatusCode.NOT_FOUND, ("POST", "/v2/models/lin/versions/9/infer", rest_body()))
    same_error(s, "bad shape", lambda: rpc_error(st.ModelInfer, infer_req(rows=((1, 2, 3),))),
               grpc.StatusCode.INVALID_ARGUMENT,
               ("POST", "/v2/models/lin/infer", rest_body(rows=((1, 2, 3),))), contains="shape")
    same_error(s, "backend failure", lambda: rpc_error(st.ModelInfer, infer_req("broken")),
               grpc.StatusCode.INTERNAL, ("POST", "/v2/models/broken/infer", rest_body()))
    bad = infer_req(version="1", raw=True)
    bad.raw_input_contents[0] = bad.raw_input_contents[0][:12]
    same_error(s, "raw size", lambda: rpc_error(st.ModelInfer, bad),
               grpc.StatusCode.INVALID_ARGUMENT, contains="12 bytes")
    bad = infer_req(version="1", raw=True)
    bad.raw_input_contents.append(b"xxxx")
    same_error(s, "raw entries", lambda: rpc_error(st.ModelInfer, bad),
               grpc.StatusCode.INVALID_ARGUMENT, contains="raw_input_contents: 2 entries for 1")
    bad = infer_req()
    bad.inputs[0].datatype = "FP128"
    same_error(s, "unknown datatype", lambda: rpc_error(st.ModelInfer, bad),
               grpc.StatusCode.INVALID_ARGUMENT, contains="datatype")
    same_error(s, "no model name", lambda: rpc_error(st.ModelInfer, infer_req("")),
               grpc.StatusCode.INVALID_ARGUMENT, contains="model_name")
    same_error(s, "a name that is not a name", lambda: rpc_error(st.ModelInfer, infer_req("a/b")),
               grpc.StatusCode.INVALID_ARGUMENT, contains="model_name")
    same_error(s, "no inputs", lambda: rpc_error(st.ModelInfer, pb.ModelInferRequest(model_name="lin")),
               grpc.StatusCode.INVALID_ARGUMENT, contains="inputs")
    raw_call = s.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
    same_error(s, "not protobuf", lambda: rpc_error(raw_call, b"\xff\xff\xff"),
               grpc.StatusCode.INVALID_ARGUMENT, contains="ModelInferRequest")
    other = s.channel.unary_unary("/inference.GRPCInferenceService/ModelConfig")
    same_error(s, "unknown method", lambda: rpc_error(other, b""), grpc.StatusCode.UNIMPLEMENTED)

    # A full queue: RESOURCE_EXHAUSTED with REST's text.
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        outs = list(ex.map(lambda _: rpc_error(st.ModelInfer, infer_req("full")), range(8)))
    codes = [c for c, _ in outs]
    check(grpc.StatusCode.OK in codes, f"full: some calls are served ({outs})")
    check(grpc.StatusCode.RESOURCE_EXHAUSTED in codes, f"full: some are refused ({outs})")
    check(all(m == "full/1: queue is full" for c, m in outs
              if c == grpc.StatusCode.RESOURCE_EXHAUSTED), f"full: REST's text ({outs})")

    # A 10,000-row request.
    rows = [(i % 7, -(i % 5)) for i in range(10000)]
    for raw in (False, True):
        r = st.ModelInfer(infer_req(rows=rows, version="1", raw=raw))
        v = values(r)
        check(len(v) == 10000 and list(r.outputs[0].shape) == [10000] and
              all(abs(v[i] - (rows[i][0] + rows[i][1] + 1)) < 1e-5 for i in range(10000)),
              f"10,000 rows raw={raw}")

    # Routing by the model's route: weighted shares, sticky keys.
    code, body = s.rest("PUT", "/v2/models/lin/route",
                        {"policy": "weighted", "weights": {"1": 75, "2": 25}})
    check(code == 200, f"PUT route: {code} {body}")
    seen = {"1": 0, "2": 0}
    for _ in range(100):
        seen[st.ModelInfer(infer_req()).model_version] += 1
    check(seen == {"1": 75, "2": 25}, f"weighted 75/25 through gRPC: {seen}")
    code, body = s.rest("PUT", "/v2/models/lin/route",
                        {"policy": "sticky", "weights": {"1": 50, "2": 50},
                         "sticky": {"header": "X-User-Id"}})
    check(code == 200, f"PUT sticky route: {code} {body}")
    by_user = {}
    for u in range(24):
        got = {st.ModelInfer(infer_req(), metadata=(("x-user-id", f"user-{u}"),)).model_version
               for _ in range(3)}
        check(len(got) == 1, f"sticky: user-{u} always reaches one version ({got})")
        by_user[u] = got.pop()
        code, body = s.rest("POST", "/v2/models/lin/infer", rest_body(),
                            {"X-User-Id": f"user-{u}"})
        check(code == 200 and body["model_version"] == by_user[u],
              f"sticky: user-{u} reaches the same version over REST and gRPC")
    check(set(by_user.values()) == {"1", "2"}, f"sticky: both versions get users ({by_user})")
    code, body = s.rest("PUT", "/v2/models/lin/route",
                        {"policy": "sticky", "weights": {"1": 50, "2": 50},
                         "sticky": {"parameter": "user_id"}})
    check(code == 200, f"PUT sticky-by-parameter route: {code} {body}")
    by_param = {}
    for u in range(24):
        req = infer_req()
        req.parameters["user_id"].string_param = f"user-{u}"
        by_param[u] = {st.ModelInfer(req).model_version for _ in range(3)}
        check(len(by_param[u]) == 1, f"sticky by parameter: user-{u} keeps one version")
    check(set().union(*by_param.values()) == {"1", "2"}, "sticky by parameter: both versions")
    code, body = s.rest("PUT", "/v2/models/lin/route",
                        {"policy": "compare", "compare": {"targets": ["1", "2"], "select": "first"}})
    check(code == 200, f"PUT compare route: {code} {body}")
    r = st.ModelInfer(infer_req(id="cmp"))
    cmp = json.loads(r.parameters["compare"].string_param) if "compare" in r.parameters else {}
    check(cmp.get("select") == "first" and cmp.get("versions") == ["1", "2"] and
          r.model_version == "1" and values(r) == [5.0, 0.0] and r.id == "cmp",
          f"compare through gRPC: the first target answers, the summary in parameters ({r})")
    s.rest("DELETE", "/v2/models/lin/route")
    # Feedback finds a request made over gRPC by its id.
    st.ModelInfer(infer_req(id="fb-grpc-1"))
    code, body = s.rest("POST", "/v2/models/lin/feedback", {"id": "fb-grpc-1", "label": 1})
    check(code == 200, f"feedback on a gRPC request's id: {code} {body}")
    code, body = s.rest("POST", "/v2/models/lin/feedback", {"id": "never-sent", "label": 1})
    check(code != 200, f"feedback on an unknown id is refused ({code})")

    # 64 calls at once on one channel.
    futs = [st.ModelInfer.future(infer_req(version="1", id=f"c{i}", rows=((i, i),)))
            for i in range(64)]
    res = [f.result(timeout=60) for f in futs]
    check(all(r.id == f"c{i}" and values(r) == [2.0 * i + 1] for i, r in enumerate(res)),
          "64 concurrent calls: each answered with its own id and values")

    # The same per-version metrics as REST.
    def served(text):
        for line in text.splitlines():
            if (line.startswith("quiver_requests_total{") and 'model="lin"' in line and
                    'version="1"' in line):
                return float(line.split()[-1])
        return 0.0

    def metrics():
        with urllib.request.urlopen(f"http://127.0.0.1:{s.http}/metrics", timeout=30) as r:
            return r.read().decode()
    before = served(metrics())
    for _ in range(5):
        st.ModelInfer(infer_req(version="1"))
    check(served(metrics()) - before >= 5,
          f"quiver_requests_total counts gRPC calls ({before} -> {served(metrics())})")

    # A client that goes away mid-call: the server carries on.
    code, _ = rpc_error(st.ModelInfer, infer_req("slow"), timeout=0.3)
    check(code == grpc.StatusCode.DEADLINE_EXCEEDED, f"deadline mid-call: {code}")
    f = st.ModelInfer.future(infer_req("slow"))
    time.sleep(0.3)
    f.cancel()
    ch2 = grpc.insecure_channel(f"127.0.0.1:{s.grpc}")
    f2 = pbg.GRPCInferenceServiceStub(ch2).ModelInfer.future(infer_req("slow"))
    time.sleep(0.3)
    ch2.close()  # the connection itself goes
    check(st.ModelInfer(infer_req(version="1")).model_version == "1",
          "calls are served after clients went away mid-call")
    time.sleep(1.6)  # the abandoned inferences finish and answer nobody
    check(st.ServerLive(pb.ServerLiveRequest()).live, "live after the abandoned calls finished")

    # Statistics and the repository.
    stats = st.ModelStatistics(pb.ModelStatisticsRequest(name="lin", version="1"))
    check(len(stats.model_stats) == 1 and stats.model_stats[0].name == "lin" and
          stats.model_stats[0].inference_count > 0 and
          stats.model_stats[0].inference_stats.success.count > 0, f"ModelStatistics: {stats}")
    every = st.ModelStatistics(pb.ModelStatisticsRequest())
    check({m.name for m in every.model_stats} >= {"lin", "spare"}, "ModelStatistics of every model")
    idx = st.RepositoryIndex(pb.RepositoryIndexRequest())
    check({(m.name, m.state) for m in idx.models} >= {("lin", "READY"), ("spare", "READY")},
          f"RepositoryIndex: {idx}")
    st.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="spare"))
    code, _ = rpc_error(st.ModelInfer, infer_req("spare"))
    check(code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE),
          f"spare unloaded: not served ({code})")
    st.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="spare"))
    check(st.ModelReady(pb.ModelReadyRequest(name="spare")).ready, "spare loaded again")
    same_error(s, "load unknown model",
               lambda: rpc_error(st.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="nope")),
               grpc.StatusCode.NOT_FOUND, ("POST", "/v2/repository/models/nope/load", {}))

    # Shutdown drains a call in flight.
    f = st.ModelInfer.future(infer_req("slow", id="last"))
    time.sleep(0.3)
    s.proc.send_signal(signal.SIGTERM)
    try:
        r = f.result(timeout=30)
        check(r.id == "last" and values(r) == [4.0, -1.0], "the call in flight at SIGTERM is answered")
    except grpc.RpcError as e:
        check(False, f"the call in flight at SIGTERM is answered ({e.code()} {e.details()})")
    s.stop()


# ---- Tokens and message size ----
def token_server():
    tokens = os.path.join(TMP, "tokens.txt")
    with open(tokens, "w") as f:
        f.write("reader rtoken-0123456789abcdef read\nboss atoken-0123456789abcdef admin\n")
    s = Server("tokens", {"lin": ({}, {1: lin(1.0)})}, "--tokens", tokens,
               "--tokens-protect-inference", "--grpc-max-message-bytes", "65536")
    st = s.stub
    read = (("authorization", "Bearer rtoken-0123456789abcdef"),)
    admin = (("authorization", "Bearer atoken-0123456789abcdef"),)
    wrong = (("authorization", "Bearer nope-0123456789abcdef"),)
    check(st.ServerLive(pb.ServerLiveRequest()).live, "health needs no token")
    same_error(s, "no token", lambda: rpc_error(st.ModelInfer, infer_req()),
               grpc.StatusCode.UNAUTHENTICATED, ("POST", "/v2/models/lin/infer", rest_body()))
    same_error(s, "wrong token", lambda: rpc_error(st.ModelInfer, infer_req(), metadata=wrong),
               grpc.StatusCode.UNAUTHENTICATED,
               ("POST", "/v2/models/lin/infer", rest_body(), {"Authorization": wrong[0][1]}))
    check(st.ModelInfer(infer_req(), metadata=read).model_version == "1", "a read token infers")
    same_error(s, "metadata without a token",
               lambda: rpc_error(st.ModelMetadata, pb.ModelMetadataRequest(name="lin")),
               grpc.StatusCode.UNAUTHENTICATED, ("GET", "/v2/models/lin"))
    same_error(s, "a read token cannot unload",
               lambda: rpc_error(st.RepositoryModelUnload,
                                 pb.RepositoryModelUnloadRequest(model_name="lin"), metadata=read),
               grpc.StatusCode.PERMISSION_DENIED,
               ("POST", "/v2/repository/models/lin/unload", {}, {"Authorization": read[0][1]}))
    idx = st.RepositoryIndex(pb.RepositoryIndexRequest(), metadata=read)
    check([m.name for m in idx.models] == ["lin"], "a read token lists the repository")
    st.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="lin"), metadata=admin)
    # Over --grpc-max-message-bytes: refused by the core before any decoding.
    big = infer_req(rows=[(1.0, 2.0)] * 10000)
    code, msg = rpc_error(st.ModelInfer, big, metadata=read)
    check(code == grpc.StatusCode.RESOURCE_EXHAUSTED, f"oversized message: {code} {msg}")
    check(st.ModelInfer(infer_req(rows=[(1.0, 2.0)] * 1000), metadata=read).outputs[0].shape == [1000],
          "a message under the limit is served")
    # A second server cannot take the same gRPC port; bad flag values are refused.
    repo = os.path.join(s.dir, "repo")
    for args, want in ((["--grpc-port", str(s.grpc)], "grpc: cannot listen"),
                       (["--grpc-port", "70000"], "--grpc-port"),
                       (["--grpc-port", "0", "--grpc-max-message-bytes", "10"],
                        "--grpc-max-message-bytes")):
        p = subprocess.run([BIN, "serve", "--enable-test-backend", "--repo", repo, "--data",
                            os.path.join(TMP, "data-" + args[1]), "--port", "0", *args],
                           capture_output=True, text=True, timeout=60)
        check(p.returncode != 0 and want in p.stderr,
              f"serve {' '.join(args)}: refused naming {want!r} ({p.returncode} {p.stderr[-300:]})")
    s.stop()


try:
    main_server()
    token_server()
finally:
    for srv in servers:
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()
    shutil.rmtree(TMP, ignore_errors=True)
if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print("grpc: all checks passed")
