"""Regenerate the checked-in ONNX test models (tests/test_onnx_models.py uses them).

    .venv/bin/pip install torch==2.13.0 transformers   # CPU torch from the local wheel
    .venv/bin/python tests/models/make_models.py

Weights are random (fixed seeds); the files are small (tens of KB). Exported with the
TorchScript exporter (`dynamo=False`: the dynamo exporter needs onnxscript) at opset 17.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).parent
OPSET = 17


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.net(x), dim=-1)


class Block(nn.Module):
    """A ResNet basic block: conv-BN-ReLU-conv-BN plus the (projected) input, then ReLU."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (x if self.proj is None else self.proj(x)))


class ResNetish(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2))
        self.layer1 = Block(8, 8, 1)
        self.layer2 = Block(8, 16, 2)
        self.head = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layer2(self.layer1(self.stem(x)))
        y = nn.functional.adaptive_avg_pool2d(y, 1).flatten(1)
        return self.head(y)


def randomize_bn(model: nn.Module) -> None:
    """Non-trivial running statistics, so BatchNormalization is really exercised."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=g))
            m.bias.data.copy_(torch.randn(m.num_features, generator=g))


def export(model: nn.Module, args: tuple, name: str, input_names: list[str], **kw: object) -> None:
    model.eval()
    path = HERE / name
    # TrainingMode.PRESERVE with an eval model keeps BatchNormalization as a node (EVAL would
    # fold it into the convolutions, and then nothing would test it).
    torch.onnx.export(model, args, str(path), dynamo=False, opset_version=OPSET, input_names=input_names,
                      output_names=["y"], training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False, **kw)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


def bert() -> nn.Module:
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=16, hidden_act="gelu",
                        attn_implementation="eager")
    model = BertModel(config, add_pooling_layer=False)
    model.eval()

    class Encoder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = model

        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return self.bert(input_ids=input_ids).last_hidden_state

    return Encoder()


def main() -> None:
    torch.manual_seed(0)
    export(MLP(), (torch.randn(2, 16),), "mlp.onnx", ["x"])
    cnn = ResNetish()
    randomize_bn(cnn)
    export(cnn, (torch.randn(1, 3, 16, 16),), "resnet.onnx", ["x"])
    export(bert(), (torch.randint(0, 64, (1, 8)),), "bert.onnx", ["input_ids"])


if __name__ == "__main__":
    main()
