#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Generates the example XGBoost models, their reference outputs and request bodies.

Run from anywhere with the Debian interpreter (python3-xgboost, python3-sklearn, python3-numpy):

    /usr/bin/python3 scripts/make_models.py

Writes, relative to the repository root:

    examples/models/fraud/{config.json, reference.json, 1/model.json, 2/model.ubj}
    examples/models/housing/{config.json, reference.json, 1/model.json}
    examples/requests/{fraud,housing}{.json,_1row.json,_tfserving.json}

Every seed is fixed and training is single-threaded, so a second run rewrites every file
byte for byte (checked with --check, which regenerates into a temporary directory and compares).

The reference rows are quantized to multiples of 1/64 and cast to float32, so each value is
exactly representable as float32 and prints as a short decimal that any JSON parser (float or
double) reads back to the same float32. Reference outputs come from xgboost's own
`inplace_predict` on those float32 rows, with each model read back from the file written.
"""
import argparse
import filecmp
import json
import os
import sys
import tempfile

import numpy as np
import xgboost as xgb
from sklearn.datasets import make_classification, make_regression

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_REF_ROWS = 8
QUANTUM = 64.0  # reference rows are k/64: exact in float32, short in decimal


def f32_list(a):
    """A float32 array as a (nested) list of Python floats holding the exact float32 values."""
    return [f32_list(x) for x in a] if np.ndim(a) > 1 else [float(np.float32(x)) for x in a]


def quantize(rows):
    return (np.round(np.asarray(rows, dtype=np.float64) * QUANTUM) / QUANTUM).astype(np.float32)


def write_text(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2) + "\n")


def rows_json(rows, indent):
    """A list of rows, one row per line: readable, and still valid JSON."""
    pad = " " * indent
    inner = ",\n".join(pad + "  " + json.dumps(r) for r in rows)
    return "[\n" + inner + "\n" + pad + "]"


def train(x, y, params, rounds):
    params = dict(params, nthread=1, seed=0, tree_method="hist")
    return xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=rounds)


def save_model(booster, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    booster.save_model(path)
    size = os.path.getsize(path)
    if size >= 1 << 20:
        sys.exit("make_models: %s is %d bytes, over the 1 MiB limit" % (path, size))


def predict_file(path, rows):
    """Predicts with the model as written to disk, on float32 rows, as a list of float32 values."""
    b = xgb.Booster(model_file=path)
    out = b.inplace_predict(rows)
    return f32_list(np.asarray(out, dtype=np.float32).reshape(-1))


def write_config(path, n_features, output_name):
    write_json(path, {
        "backend": "xgboost",
        "max_batch_size": 64,
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [-1, n_features]}],
        "outputs": [{"name": output_name, "datatype": "FP32", "shape": [-1]}],
        "version_policy": {"all": {}},
    })


def write_reference(path, rows, outputs):
    text = '{\n  "inputs": ' + rows_json(f32_list(rows), 2) + ',\n  "outputs": {\n'
    text += ",\n".join('    "%s": %s' % (v, json.dumps(o)) for v, o in sorted(outputs.items()))
    text += "\n  }\n}\n"
    write_text(path, text)


def write_requests(reqdir, name, rows):
    flat = f32_list(rows.reshape(-1))
    n, k = rows.shape
    write_text(os.path.join(reqdir, name + ".json"), json.dumps({
        "id": name + "-example",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [n, k], "data": flat}],
    }) + "\n")
    write_text(os.path.join(reqdir, name + "_1row.json"), json.dumps({
        "id": name + "-1row",
        "inputs": [{"name": "features", "datatype": "FP32", "shape": [1, k],
                    "data": flat[:k]}],
    }) + "\n")
    write_text(os.path.join(reqdir, name + "_tfserving.json"),
               '{"instances": ' + rows_json(f32_list(rows), 0) + "}\n")


def make_fraud(root):
    x, y = make_classification(n_samples=4000, n_features=30, n_informative=12,
                               n_redundant=6, weights=[0.85, 0.15], flip_y=0.01,
                               class_sep=0.9, random_state=7)
    x = x.astype(np.float32)
    # Held-out reference rows, half of each class, alternating, so the outputs span [0, 1].
    held_x, held_y = x[-200:], y[-200:]
    neg, pos = np.flatnonzero(held_y == 0), np.flatnonzero(held_y == 1)
    pick = [i for pair in zip(neg[:N_REF_ROWS // 2], pos[:N_REF_ROWS // 2]) for i in pair]
    ref = quantize(held_x[pick])
    x, y = x[:-200], y[:-200]
    mdir = os.path.join(root, "examples", "models", "fraud")
    base = {"objective": "binary:logistic", "eta": 0.1, "eval_metric": "logloss",
            "base_score": 0.5}
    v1 = os.path.join(mdir, "1", "model.json")
    v2 = os.path.join(mdir, "2", "model.ubj")
    save_model(train(x, y, dict(base, max_depth=4), 100), v1)
    save_model(train(x, y, dict(base, max_depth=5, subsample=0.8), 200), v2)
    write_config(os.path.join(mdir, "config.json"), 30, "probability")
    write_reference(os.path.join(mdir, "reference.json"), ref,
                    {"1": predict_file(v1, ref), "2": predict_file(v2, ref)})
    write_requests(os.path.join(root, "examples", "requests"), "fraud", ref)


def make_housing(root):
    x, y = make_regression(n_samples=2000, n_features=8, n_informative=6, noise=5.0,
                           random_state=11)
    x = x.astype(np.float32)
    ref = quantize(x[-N_REF_ROWS:])
    x, y = x[:-N_REF_ROWS], y[:-N_REF_ROWS]
    mdir = os.path.join(root, "examples", "models", "housing")
    v1 = os.path.join(mdir, "1", "model.json")
    save_model(train(x, y, {"objective": "reg:squarederror", "eta": 0.15, "max_depth": 5,
                            "base_score": 0.0}, 50), v1)
    write_config(os.path.join(mdir, "config.json"), 8, "value")
    write_reference(os.path.join(mdir, "reference.json"), ref, {"1": predict_file(v1, ref)})
    write_requests(os.path.join(root, "examples", "requests"), "housing", ref)


FILES = [
    "examples/models/fraud/config.json",
    "examples/models/fraud/reference.json",
    "examples/models/fraud/1/model.json",
    "examples/models/fraud/2/model.ubj",
    "examples/models/housing/config.json",
    "examples/models/housing/reference.json",
    "examples/models/housing/1/model.json",
    "examples/requests/fraud.json",
    "examples/requests/fraud_1row.json",
    "examples/requests/fraud_tfserving.json",
    "examples/requests/housing.json",
    "examples/requests/housing_1row.json",
    "examples/requests/housing_tfserving.json",
]


def generate(root):
    make_fraud(root)
    make_housing(root)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temporary directory and compare with the tree")
    args = ap.parse_args()
    if not args.check:
        generate(ROOT)
        for f in FILES:
            print("%8d  %s" % (os.path.getsize(os.path.join(ROOT, f)), f))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp)
        bad = [f for f in FILES
               if not filecmp.cmp(os.path.join(ROOT, f), os.path.join(tmp, f), shallow=False)]
    for f in bad:
        print("differs: " + f)
    print("make_models: %d of %d files identical" % (len(FILES) - len(bad), len(FILES)))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
