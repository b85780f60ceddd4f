# SPDX-License-Identifier: MIT
"""The Python peer of the benchmark: Flask under gunicorn, serving one XGBoost model with
xgboost's own in-place prediction behind the same KServe v2 request/response shape as quiver.

    BENCH_MODEL=examples/models/fraud/1/model.json BENCH_MODEL_NAME=fraud \
        gunicorn -w 2 -b 127.0.0.1:8082 --chdir bench/peers flask_app:app

The model file is loaded once per worker. Prediction is single-threaded (nthread 1), like quiver's
backend, so the comparison is about the serving path, not about threads inside one prediction.
"""
import os

import numpy as np
import xgboost as xgb
from flask import Flask, jsonify, request

MODEL_PATH = os.environ.get("BENCH_MODEL", "examples/models/fraud/1/model.json")
MODEL_NAME = os.environ.get("BENCH_MODEL_NAME", "fraud")
MODEL_VERSION = os.environ.get("BENCH_MODEL_VERSION", "1")
OUTPUT_NAME = os.environ.get("BENCH_OUTPUT_NAME", "probability")

booster = xgb.Booster(model_file=MODEL_PATH)
booster.set_param({"nthread": 1})
n_features = booster.num_features()
app = Flask(__name__)


def error(status, message):
    resp = jsonify({"error": message})
    resp.status_code = status
    return resp


@app.get("/v2/health/ready")
def ready():
    return jsonify({"ready": True})


@app.post("/v2/models/<name>/infer")
@app.post("/v2/models/<name>/versions/<version>/infer")
def infer(name, version=MODEL_VERSION):
    if name != MODEL_NAME or version != MODEL_VERSION:
        return error(404, "unknown model %s version %s" % (name, version))
    body = request.get_json(silent=True)
    try:
        inp = body["inputs"][0]
        shape = [int(d) for d in inp["shape"]]
        if inp["datatype"] != "FP32" or len(shape) != 2 or shape[1] != n_features:
            raise ValueError("expected FP32 input of shape [-1, %d]" % n_features)
        x = np.asarray(inp["data"], dtype=np.float32).reshape(shape)
    except (TypeError, KeyError, IndexError, ValueError) as e:
        return error(400, "bad request: %s" % e)
    y = np.asarray(booster.inplace_predict(x), dtype=np.float32).reshape(-1)
    out = {"model_name": name, "model_version": version,
           "outputs": [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [int(y.shape[0])],
                        "data": y.tolist()}]}
    if "id" in body:
        out["id"] = body["id"]
    return jsonify(out)
