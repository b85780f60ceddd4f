#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Writes the models the benchmark needs that are too large to keep in git.

    /usr/bin/python3 scripts/make_bench_models.py [OUT_DIR]     (default bench/models)

OUT_DIR/resnet18.onnx: torchvision's ResNet-18 architecture with random weights
(torch.manual_seed(0)), batch 1, input "input" [1,3,224,224] FP32, output
"logits" [1,1000], opset 13, batch norms folded by the exporter (eval mode).
About 45 MB. bench/run.sh calls this once and reuses the file while it exists.

Uses Debian's python3-torch; python3-torchvision when installed, else the
same architecture written here with torch.nn (identical layer shapes).
"""
import os
import sys

import torch
from torch import nn


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return self.relu(y + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    """torchvision.models.resnet18's layout, for when torchvision is missing."""

    def __init__(self, classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18():
    try:
        import torchvision
    except ImportError:
        return ResNet18(), "torch.nn (torchvision missing)"
    return torchvision.models.resnet18(weights=None), "torchvision %s" % torchvision.__version__


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "bench/models"
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    model, source = resnet18()
    # Random batch-norm statistics, so that folding them is not a no-op.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    model.eval()
    path = os.path.join(out_dir, "resnet18.onnx")
    tmp = path + ".tmp"
    torch.onnx.export(model, torch.randn(1, 3, 224, 224), tmp, input_names=["input"],
                      output_names=["logits"], opset_version=13, do_constant_folding=True)
    os.replace(tmp, path)
    print("make_bench_models: wrote %s (%s, %.1f MB)" % (path, source, os.path.getsize(path) / 1e6))


if __name__ == "__main__":
    main()
