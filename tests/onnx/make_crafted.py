#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the small hand-made ONNX models under tests/onnx/models/ that the
tests need and that no exporter produces on purpose. Plain protobuf wire
format, no dependencies:

  const_of_shape.onnx   ConstantOfShape over a graph input "shape" (INT64 [2]):
                        the output's size comes from the request's values.

Run from the repository root: python3 tests/onnx/make_crafted.py
"""
import os


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def field(num, content):
    if isinstance(content, str):
        content = content.encode()
    return varint(num << 3 | 2) + varint(len(content)) + content


def num(n, v):
    return varint(n << 3) + varint(v)


def value_info(name, elem, dims):
    shape = b"".join(field(1, num(1, d)) for d in dims) if dims is not None else None
    tensor = num(1, elem) + (field(2, shape) if shape is not None else b"")
    return field(1, name) + field(2, field(1, tensor))


def model(nodes, inputs, outputs, opset=13):
    graph = b"".join(field(1, n) for n in nodes) + field(2, "g")
    graph += b"".join(field(11, value_info(*i)) for i in inputs)
    graph += b"".join(field(12, value_info(*o)) for o in outputs)
    return num(1, 8) + field(8, num(2, opset)) + field(7, graph)


def node(op, ins, outs, name):
    return (b"".join(field(1, i) for i in ins) + b"".join(field(2, o) for o in outs)
            + field(3, name) + field(4, op))


FLOAT, INT64 = 1, 7
here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
with open(os.path.join(here, "const_of_shape.onnx"), "wb") as f:
    f.write(model([node("ConstantOfShape", ["shape"], ["y"], "fill")],
                  [("shape", INT64, [2])], [("y", FLOAT, None)]))
