#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes the small XGBoost models the compiled-forest exactness test
(tests/unit/backend/test_forest.c) loads with both engines, into
tests/unit/backend/forest/. Fixed seeds: the same xgboost version writes the
same files. Needs Debian's python3-xgboost and python3-numpy.

Each model NAME gets NAME.json or NAME.ubj, and NAME.rows.f32 (64 rows of
float32 inputs, some NaN) with NAME.pred.f32 (the Python package's
inplace_predict on them), a third witness beside the C test's own rows.
The test reads MANIFEST (one "file features engine" line per model; engine
is what the backend must choose: compiled or libxgboost).

    /usr/bin/python3 scripts/make_forest_models.py [OUTDIR]
"""
import os
import sys

import numpy as np
import xgboost as xgb

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "unit", "backend", "forest")


def data(rng, rows, feats, missing=0.1, boundaries=False):
    x = rng.normal(size=(rows, feats)).astype(np.float32)
    if boundaries:
        # Columns of few distinct values that are adjacent floats, and of
        # huge, tiny and subnormal magnitudes: the exact method's split
        # points fall on float boundaries.
        base = np.float32(1.0)
        near = np.array([base, np.nextafter(base, np.float32(2)),
                         np.nextafter(np.nextafter(base, np.float32(2)), np.float32(2)),
                         np.nextafter(base, np.float32(0))], dtype=np.float32)
        x[:, 0] = rng.choice(near, size=rows)
        x[:, 1] = rng.choice(np.array([1e-38, 1e-45, 3e38, -3e38, 0.0, -0.0],
                                      dtype=np.float32), size=rows)
        x[:, 2] = np.round(x[:, 2] * 4) / 4
    if missing > 0:
        x[rng.random(size=x.shape) < missing] = np.nan
    return x


def target(rng, x, kind, classes=3):
    z = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float64)
    z = np.clip(z, -10, 10)
    s = z[:, 0] * 1.5 - z[:, 1] + 0.5 * z[:, 2] * z[:, 3 % z.shape[1]] + rng.normal(
        scale=0.5, size=len(z))
    if kind == "binary":
        return (s > 0).astype(np.float32)
    if kind == "unit":
        return (1 / (1 + np.exp(-s))).astype(np.float32)
    if kind == "count":
        return rng.poisson(np.exp(np.clip(s / 2, -3, 3))).astype(np.float32)
    if kind == "multi":
        return np.digitize(s, np.quantile(s, np.linspace(0, 1, classes + 1)[1:-1])).astype(
            np.float32)
    return s.astype(np.float32)


MODELS = [
    # name, objective, depth, rounds, features, rows, target, extra params, format
    ("bin_d1_r1", "binary:logistic", 1, 1, 6, 400, "binary", {}, "json"),
    ("bin_d4_r100", "binary:logistic", 4, 100, 12, 2000, "binary", {"base_score": 0.3}, "ubj"),
    ("bin_d5_r150_exact", "binary:logistic", 5, 150, 8, 1500, "binary",
     {"tree_method": "exact"}, "ubj"),
    ("reg_d6_r100", "reg:squarederror", 6, 100, 10, 2000, "reg", {"base_score": 2.5}, "ubj"),
    ("reg_d12_r2", "reg:squarederror", 12, 2, 10, 2500, "reg",
     {"min_child_weight": 0, "tree_method": "exact"}, "ubj"),
    ("reg_d9_r20_bound", "reg:squarederror", 9, 20, 6, 2000, "reg",
     {"tree_method": "exact", "boundaries": True}, "ubj"),
    ("reglog_d3_r50", "reg:logistic", 3, 50, 8, 1000, "unit", {"base_score": 0.7}, "json"),
    ("softprob_d5_r40", "multi:softprob", 5, 40, 10, 1500, "multi", {"num_class": 4}, "ubj"),
    ("softmax_d3_r20", "multi:softmax", 3, 20, 8, 1000, "multi", {"num_class": 3}, "json"),
    ("poisson_d4_r80", "count:poisson", 4, 80, 8, 1500, "count", {}, "ubj"),
    ("logitraw_d2_r500", "binary:logitraw", 2, 500, 8, 1000, "binary", {}, "ubj"),
    ("forest_d5_r10_p4", "binary:logistic", 5, 10, 8, 1000, "binary",
     {"num_parallel_tree": 4, "subsample": 0.8, "colsample_bynode": 0.8}, "ubj"),
    ("early_d3_r60", "binary:logistic", 3, 60, 8, 600, "binary", {"early": True}, "json"),
    # Not compiled: libxgboost predicts.
    ("dart_d3_r10", "binary:logistic", 3, 10, 6, 500, "binary", {"booster": "dart"}, "json"),
    ("gamma_d3_r10", "reg:gamma", 3, 10, 6, 500, "count", {"target_shift": 1}, "json"),
]


def main():
    os.makedirs(OUT, exist_ok=True)
    manifest = []
    for i, (name, obj, depth, rounds, feats, rows, kind, extra, fmt) in enumerate(MODELS):
        rng = np.random.default_rng(1000 + i)
        extra = dict(extra)
        x = data(rng, rows, feats, boundaries=extra.pop("boundaries", False))
        y = target(rng, x, kind, extra.get("num_class", 3)) + extra.pop("target_shift", 0)
        early = extra.pop("early", False)
        params = {"objective": obj, "max_depth": depth, "eta": 0.3, "seed": 7,
                  "nthread": 1, "tree_method": "hist"}
        params.update(extra)
        if early:
            cut = rows * 3 // 4
            bst = xgb.train(params, xgb.DMatrix(x[:cut], y[:cut]), rounds,
                            evals=[(xgb.DMatrix(x[cut:], y[cut:]), "valid")],
                            early_stopping_rounds=5, verbose_eval=False)
        else:
            bst = xgb.train(params, xgb.DMatrix(x, y), rounds)
        path = os.path.join(OUT, name + "." + fmt)
        bst.save_model(path)
        probe = data(np.random.default_rng(2000 + i), 64, feats, missing=0.2)
        pred = bst.inplace_predict(probe).astype(np.float32)
        probe.tofile(os.path.join(OUT, name + ".rows.f32"))
        pred.tofile(os.path.join(OUT, name + ".pred.f32"))
        compiled = extra.get("booster", "gbtree") == "gbtree" and obj != "reg:gamma"
        manifest.append("%s %d %s" % (os.path.basename(path), feats,
                                      "compiled" if compiled else "libxgboost"))
        print(name, os.path.getsize(path), "bytes")
    with open(os.path.join(OUT, "MANIFEST"), "w") as f:
        f.write("\n".join(manifest) + "\n")


if __name__ == "__main__":
    main()
