#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Generates the example ONNX models and their reference outputs.

Run with the Debian interpreter (python3-torch, python3-onnx):

    /usr/bin/python3 scripts/make_onnx_models.py [--check]

Writes, relative to the repository root:

    examples/models/mlp/{config.json, reference.json, 1/model.onnx}
        30 fraud features -> 256 -> 256 -> 2, ReLU, softmax probabilities
    examples/models/cnn/{config.json, reference.json, 1/model.onnx}
        1x16x16 image -> conv/relu/maxpool -> conv/batchnorm/relu -> global
        average pool -> 10 logits

Weights come from fixed seeds (no training: the runtime is what is being
checked). The batch dimension is dynamic. Reference inputs are multiples of
1/64, exact in float32; reference outputs are PyTorch's own forward pass in
float32, which tests/unit/onnx/test_onnx_models.c compares with quiver's
runtime within 1e-4. --check regenerates into a temporary directory and
compares the JSON files (the .onnx bytes may differ between torch builds).
"""
import argparse
import filecmp
import json
import os
import sys
import tempfile

import numpy as np
import torch
from torch import nn

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPSET = 13
N_REF = 4


class Mlp(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(30, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                                 nn.Linear(256, 2))

    def forward(self, x):
        return torch.softmax(self.net(x), dim=1)


class Cnn(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        return self.head(torch.flatten(self.features(x), 1))


def quantized(gen, shape, scale):
    x = torch.randn(*shape, generator=gen) * scale
    return (torch.round(x * 64.0) / 64.0).to(torch.float32)


def write_json(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, indent=1) + "\n")


def f32(a):
    return np.asarray(a, dtype=np.float32).tolist()


def export(model, example, path, in_name, out_name):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.onnx.export(model, example, path, input_names=[in_name], output_names=[out_name],
                      dynamic_axes={in_name: {0: "batch"}, out_name: {0: "batch"}},
                      opset_version=OPSET, do_constant_folding=True)


def make(root, name, model, in_shape, in_name, out_name, seed, scale):
    torch.manual_seed(seed)
    m = model()
    if name == "cnn":
        # Non-trivial running statistics, so BatchNormalization does something.
        bn = m.features[4]
        gen = torch.Generator().manual_seed(seed + 1)
        bn.running_mean.copy_(torch.randn(16, generator=gen) * 0.1)
        bn.running_var.copy_(torch.rand(16, generator=gen) + 0.5)
    m.eval()
    gen = torch.Generator().manual_seed(seed + 2)
    x = quantized(gen, (N_REF,) + in_shape, scale)
    with torch.no_grad():
        y = m(x)
    base = os.path.join(root, "examples", "models", name)
    export(m, x, os.path.join(base, "1", "model.onnx"), in_name, out_name)
    write_json(os.path.join(base, "config.json"), {
        "backend": "onnx",
        "max_batch_size": 64,
        "inputs": [{"name": in_name, "datatype": "FP32", "shape": [-1] + list(in_shape)}],
        "outputs": [{"name": out_name, "datatype": "FP32", "shape": [-1, y.shape[1]]}],
    })
    write_json(os.path.join(base, "reference.json"), {
        "input": {"name": in_name, "shape": list(x.shape), "data": f32(x.flatten())},
        "output": {"name": out_name, "shape": list(y.shape), "data": f32(y.flatten())},
        "tolerance": 1e-4,
    })


def bad_models(root):
    """Small broken models for the loader's error paths (tests/onnx/models/)."""
    from onnx import TensorProto, helper

    def save(name, nodes, inputs, outputs, inits=(), opset=13):
        g = helper.make_graph(nodes, name, inputs, outputs, initializer=list(inits))
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="quiver-tests")
        path = os.path.join(root, "tests", "onnx", "models", name + ".onnx")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(m.SerializeToString())

    f32 = TensorProto.FLOAT
    x = helper.make_tensor_value_info("x", f32, ["batch", 3])
    y = helper.make_tensor_value_info("y", f32, ["batch", 3])
    save("unknown_op", [helper.make_node("FooBar", ["x"], ["y"], name="mystery")], [x], [y])
    save("bad_shape", [helper.make_node("Add", ["x", "w"], ["y"], name="add_bad")], [x], [y],
         [helper.make_tensor("w", f32, [4], [1.0, 2.0, 3.0, 4.0])])
    save("bad_type", [helper.make_node("Relu", ["x"], ["y"], name="relu_int")],
         [helper.make_tensor_value_info("x", TensorProto.STRING, [2])],
         [helper.make_tensor_value_info("y", TensorProto.STRING, [2])])
    save("missing_input", [helper.make_node("Relu", ["nowhere"], ["y"], name="relu_lost")],
         [x], [y])
    save("cycle", [helper.make_node("Add", ["x", "b"], ["a"], name="add_a"),
                   helper.make_node("Relu", ["a"], ["b"], name="relu_b"),
                   helper.make_node("Identity", ["a"], ["y"], name="out")], [x], [y])
    save("old_opset", [helper.make_node("Relu", ["x"], ["y"], name="relu")], [x], [y], opset=99)
    save("add_relu", [helper.make_node("Add", ["x", "w"], ["s"], name="add"),
                      helper.make_node("Relu", ["s"], ["y"], name="relu")], [x], [y],
         [helper.make_tensor("w", f32, [3], [1.0, -2.0, 0.5])])
    # The same with its initializer in an external data file beside the model,
    # and a copy whose external location tries to leave the directory.
    import onnx
    from onnx.external_data_helper import set_external_data
    models = os.path.join(root, "tests", "onnx", "models")
    for name, location in (("add_relu_external", "add_relu_external.bin"),
                           ("add_relu_escape", "../add_relu_external.bin")):
        w = helper.make_tensor("w", f32, [3], [1.0, -2.0, 0.5])
        raw = np.asarray([1.0, -2.0, 0.5], dtype="<f4").tobytes()
        w.ClearField("float_data")
        w.raw_data = raw
        set_external_data(w, location=location, offset=0, length=len(raw))
        w.ClearField("raw_data")
        w.data_location = TensorProto.EXTERNAL
        g = helper.make_graph([helper.make_node("Add", ["x", "w"], ["s"], name="add"),
                               helper.make_node("Relu", ["s"], ["y"], name="relu")],
                              name, [x], [y], initializer=[w])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="quiver-tests")
        with open(os.path.join(models, name + ".onnx"), "wb") as f:
            f.write(m.SerializeToString())
        if name == "add_relu_external":
            with open(os.path.join(models, location), "wb") as f:
                f.write(raw)


def generate(root):
    make(root, "mlp", Mlp, (30,), "features", "probabilities", seed=7, scale=2.0)
    make(root, "cnn", Cnn, (1, 16, 16), "image", "logits", seed=11, scale=1.0)
    bad_models(root)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare with the committed files")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if not args.check:
        generate(ROOT)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp)
        bad = []
        for name in ("mlp", "cnn"):
            for f in ("config.json", "reference.json"):
                a = os.path.join(tmp, "examples", "models", name, f)
                b = os.path.join(ROOT, "examples", "models", name, f)
                if not os.path.exists(b) or not filecmp.cmp(a, b, shallow=False):
                    bad.append(os.path.relpath(b, ROOT))
        for b in bad:
            print("differs:", b)
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
