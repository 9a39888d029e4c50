"""Regenerate the model zoo: tests/zoo/*.onnx and tests/zoo/manifest.json (tests/test_zoo.py).

Public architectures from torchvision, timm and transformers, built from their own classes
with tiny configs and random weights (fixed seeds; nothing is downloaded, never
`from_pretrained`), each exported by both of PyTorch's ONNX exporters: the TorchScript one
(`dynamo=False`, opset 17) and the default torch.export one (`dynamo=True`). The transformers
text models come in two variants: the library's defaults (SDPA attention, with an
`attention_mask` input) and eager attention without a mask. Static shapes, batch 1.

Needs torch, torchvision, timm, transformers, onnx, onnxscript (see tests/zoo/README.md for the
venv); the tests never import them. Usage:

    /work/zoo-venv/bin/python tests/zoo/make_zoo.py            # every model
    /work/zoo-venv/bin/python tests/zoo/make_zoo.py bert gpt2  # only these (manifest merged)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import timm
import torch
import torchvision
import transformers
from torch import nn

HERE = Path(__file__).parent
MANIFEST = HERE / "manifest.json"
TORCHSCRIPT_OPSET = 17
SEQ = 16
VOCAB = 128
IMAGE = (1, 3, 64, 64)     # the CNNs
VIT_IMAGE = (1, 3, 32, 32)  # the ViTs (patch 8: 16 patches)


@dataclass
class Input:
    """One graph input. kind: "float" (standard normal), "tokens" (int64 ids in [0, high)),
    "mask" (int64 padding mask: ones, then zeros)."""

    name: str
    shape: tuple[int, ...]
    kind: str = "float"
    high: int | None = None

    def example(self) -> torch.Tensor:
        if self.kind == "float":
            return torch.randn(self.shape)
        if self.kind == "tokens":
            return torch.randint(0, self.high, self.shape)
        mask = torch.ones(self.shape, dtype=torch.int64)
        mask[..., -4:] = 0  # padding, so no exporter can treat the mask as all ones
        return mask

    def manifest(self) -> dict:
        entry = {"name": self.name, "shape": list(self.shape),
                 "dtype": "float32" if self.kind == "float" else "int64", "kind": self.kind}
        if self.high is not None:
            entry["high"] = self.high
        return entry


@dataclass
class Zoo:
    """A model of the zoo: `build(variant)` returns the module to export."""

    name: str
    source: str
    build: Callable[[str], nn.Module]
    inputs: Callable[[str], list[Input]]
    output: str
    variants: tuple[str, ...] = ("default",)
    notes: dict = field(default_factory=dict)


class Outputs(nn.Module):
    """Calls a transformers model with keyword inputs and returns `last_hidden_state`, so the
    exported graph has one output."""

    def __init__(self, model: nn.Module, names: list[str], **extra: object) -> None:
        super().__init__()
        self.model, self.names, self.extra = model, names, extra

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, args)), **self.extra).last_hidden_state


def randomize(model: nn.Module) -> nn.Module:
    """Random init leaves BatchNorm/LayerNorm as identities (and timm zeroes the last BN of
    each residual block, torchvision's ViT its classifier): give norms random statistics and
    affine parameters, and all-zero matrices random values, so every layer computes something."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
            if getattr(m, "weight", None) is not None and "Norm" in type(m).__name__:
                m.weight.uniform_(0.5, 1.5)
                if getattr(m, "bias", None) is not None:
                    m.bias.normal_(0, 0.1)
        for p in model.parameters():
            if p.dim() >= 2 and not p.any():
                p.normal_(0, p[0].numel() ** -0.5)
    return model.eval()


# ------------------------------------------------------------------ vision

def resnet18(_: str) -> nn.Module:
    # timm's resnet18 (BasicBlock, layers 2-2-2-2) with reduced widths
    return timm.create_model("resnet18", num_classes=10, stem_width=8, channels=(8, 16, 24, 32))


def mobilenet_v3(_: str) -> nn.Module:
    return torchvision.models.mobilenet_v3_small(num_classes=10, width_mult=0.2, reduced_tail=True)


def efficientnet(_: str) -> nn.Module:
    from torchvision.models.efficientnet import EfficientNet, _efficientnet_conf

    blocks, last = _efficientnet_conf("efficientnet_b0", width_mult=0.15, depth_mult=0.25)
    return EfficientNet(blocks, dropout=0.2, last_channel=last, num_classes=10)


def squeezenet(_: str) -> nn.Module:
    """torchvision's SqueezeNet 1.1 (its Fire modules and classifier) at a quarter of the
    channels: the full one is 2.9 MB even with 10 classes."""
    from torchvision.models.squeezenet import Fire, SqueezeNet

    model = SqueezeNet("1_1", num_classes=10)
    pool = lambda: nn.MaxPool2d(kernel_size=3, stride=2, ceil_mode=True)  # noqa: E731
    model.features = nn.Sequential(
        nn.Conv2d(3, 16, kernel_size=3, stride=2), nn.ReLU(inplace=True), pool(),
        Fire(16, 4, 16, 16), Fire(32, 4, 16, 16), pool(),
        Fire(32, 8, 32, 32), Fire(64, 8, 32, 32), pool(),
        Fire(64, 12, 48, 48), Fire(96, 12, 48, 48), Fire(96, 16, 64, 64), Fire(128, 16, 64, 64),
    )
    model.classifier[1] = nn.Conv2d(128, 10, kernel_size=1)
    return model


def convnext(_: str) -> nn.Module:
    return timm.create_model("convnext_atto", num_classes=10, depths=(1, 1, 1, 1), dims=(16, 24, 32, 48))


def vit_timm(_: str) -> nn.Module:
    return timm.create_model("vit_tiny_patch16_224", num_classes=10, img_size=32, patch_size=8,
                             embed_dim=32, depth=2, num_heads=2)


def vit_torchvision(_: str) -> nn.Module:
    return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2,
                                                hidden_dim=32, mlp_dim=64, num_classes=10)


# ------------------------------------------------------------------ text and audio (transformers)

TEXT_VARIANTS = ("sdpa_mask", "eager_nomask")
TEXT_NAMES = {"sdpa_mask": ["input_ids", "attention_mask"], "eager_nomask": ["input_ids"]}


def text_inputs(variant: str) -> list[Input]:
    ids = Input("input_ids", (1, SEQ), "tokens", VOCAB)
    return [ids, Input("attention_mask", (1, SEQ), "mask")] if variant == "sdpa_mask" else [ids]


def attn(variant: str) -> str:
    return "sdpa" if variant.startswith("sdpa") else "eager"


def text_model(model_cls: type, config: transformers.PretrainedConfig, **extra: object) -> Callable[[str], nn.Module]:
    def build(variant: str) -> nn.Module:
        config._attn_implementation = attn(variant)
        model = model_cls(config)
        assert model.config._attn_implementation == attn(variant), model.config._attn_implementation
        return Outputs(model, TEXT_NAMES[variant], **extra)
    return build


def bert_config() -> transformers.PretrainedConfig:
    return transformers.BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=64)


def distilbert_config() -> transformers.PretrainedConfig:
    return transformers.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=64,
                                         max_position_embeddings=64)


def gpt2_config() -> transformers.PretrainedConfig:
    return transformers.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                   bos_token_id=0, eos_token_id=0)


def llama_config() -> transformers.PretrainedConfig:
    return transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                    num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64)


def t5_config() -> transformers.PretrainedConfig:
    return transformers.T5Config(vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2)


WHISPER_MELS, WHISPER_POSITIONS = 16, 16


def whisper_encoder(variant: str) -> nn.Module:
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    config = transformers.WhisperConfig(d_model=32, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64,
                                        num_mel_bins=WHISPER_MELS, max_source_positions=WHISPER_POSITIONS,
                                        vocab_size=VOCAB, pad_token_id=0, bos_token_id=0, eos_token_id=0,
                                        decoder_start_token_id=0)
    config._attn_implementation = attn(variant)
    encoder = WhisperEncoder(config)
    assert encoder.config._attn_implementation == attn(variant)
    return Outputs(encoder, ["input_features"])


def image(shape: tuple[int, ...]) -> Callable[[str], list[Input]]:
    return lambda _: [Input("x", shape)]


ZOO = [
    Zoo("resnet18", "timm resnet18, widths 8-32", resnet18, image(IMAGE), "logits"),
    Zoo("mobilenet_v3", "torchvision mobilenet_v3_small, width_mult 0.2, reduced tail", mobilenet_v3,
        image(IMAGE), "logits"),
    Zoo("efficientnet", "torchvision EfficientNet-B0 config, width 0.15, depth 0.25", efficientnet,
        image(IMAGE), "logits"),
    Zoo("squeezenet", "torchvision SqueezeNet 1.1, a quarter of the channels", squeezenet, image(IMAGE), "logits"),
    Zoo("convnext", "timm convnext_atto, depths 1-1-1-1, dims 16-48", convnext, image(IMAGE), "logits"),
    Zoo("vit_timm", "timm vit_tiny_patch16_224, 32x32 images, patch 8, dim 32, depth 2", vit_timm,
        image(VIT_IMAGE), "logits"),
    Zoo("vit_torchvision", "torchvision VisionTransformer, 32x32 images, patch 8, dim 32, 2 layers",
        vit_torchvision, image(VIT_IMAGE), "logits"),
    Zoo("bert", "transformers BertModel, hidden 32, 2 layers", text_model(transformers.BertModel, bert_config()),
        text_inputs, "last_hidden_state", TEXT_VARIANTS),
    Zoo("distilbert", "transformers DistilBertModel, dim 32, 2 layers",
        text_model(transformers.DistilBertModel, distilbert_config()), text_inputs, "last_hidden_state", TEXT_VARIANTS),
    Zoo("gpt2", "transformers GPT2Model, n_embd 32, 2 layers",
        text_model(transformers.GPT2Model, gpt2_config(), use_cache=False), text_inputs, "last_hidden_state",
        TEXT_VARIANTS),
    Zoo("llama", "transformers LlamaModel, hidden 32, 2 layers, 2 heads / 1 KV head (GQA)",
        text_model(transformers.LlamaModel, llama_config(), use_cache=False), text_inputs, "last_hidden_state",
        TEXT_VARIANTS),
    Zoo("t5_encoder", "transformers T5EncoderModel, d_model 32, 2 layers",
        text_model(transformers.T5EncoderModel, t5_config()), text_inputs, "last_hidden_state", TEXT_VARIANTS),
    Zoo("whisper_encoder", "transformers WhisperModel's encoder, d_model 32, 2 layers, 16 mel bins",
        whisper_encoder, lambda _: [Input("input_features", (1, WHISPER_MELS, 2 * WHISPER_POSITIONS))],
        "last_hidden_state", ("sdpa", "eager")),
]

EXPORTERS = ("torchscript", "dynamo")


def export(module: nn.Module, args: tuple, inputs: list[Input], output: str, exporter: str, path: Path) -> None:
    names = dict(input_names=[i.name for i in inputs], output_names=[output])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "torchscript":
            # with gradients on: under no_grad nn.MultiheadAttention takes its fused fast path
            # (aten::_native_multi_head_attention), which this exporter cannot export
            torch.onnx.export(module, args, str(path), dynamo=False, opset_version=TORCHSCRIPT_OPSET, **names)
        else:
            # under no_grad: with gradients on, torch.export fails on T5's SDPA attention
            # ("Cannot view a tensor with shape [1, 16, 2, 16] and strides ...")
            with torch.no_grad():
                torch.onnx.export(module, args, str(path), dynamo=True, external_data=False, **names)


def strip_debug_info(path: Path) -> None:
    """Drop what the exporters record for debugging (the dynamo exporter's per-node stack traces
    and module paths, with this machine's file paths, are most of a small file's bytes)."""
    model = onnx.load(str(path))
    for graph in [model.graph, *(a.g for n in model.graph.node for a in n.attribute if a.HasField("g"))]:
        graph.ClearField("doc_string")
        for node in graph.node:
            node.ClearField("doc_string")
            node.ClearField("metadata_props")
    onnx.save(model, str(path))


def describe(path: Path) -> dict:
    model = onnx.load(str(path))
    data = path.read_bytes()
    opset = next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
    return {"file": path.name, "opset": opset, "size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
            "ops": sorted({n.op_type for n in model.graph.node})}


def ort_error(path: Path, module: nn.Module, args: tuple, inputs: list[Input]) -> float:
    """Largest |onnxruntime - torch| on the example inputs, relative to max |torch|: checks the
    export itself."""
    with torch.no_grad():
        want = module(*args).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {i.name: a.numpy() for i, a in zip(inputs, args)})
    return float(np.max(np.abs(got - want)) / float(np.max(np.abs(want))))


def first_line(exc: BaseException) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", f"{type(exc).__name__}: {exc}".strip())  # colours
    return text.splitlines()[0][:300]


def generate(zoo: Zoo) -> list[dict]:
    entries = []
    for variant in zoo.variants:
        for exporter in EXPORTERS:
            torch.manual_seed(0)
            module = randomize(zoo.build(variant))
            inputs = zoo.inputs(variant)
            args = tuple(i.example() for i in inputs)
            stem = zoo.name if variant == "default" else f"{zoo.name}-{variant}"
            path = HERE / f"{stem}-{exporter}.onnx"
            entry = {"model": zoo.name, "source": zoo.source, "variant": variant, "exporter": exporter,
                     "inputs": [i.manifest() for i in inputs], "output": zoo.output,
                     "params": sum(p.numel() for p in module.parameters())}
            path.unlink(missing_ok=True)
            try:
                export(module, args, inputs, zoo.output, exporter, path)
                strip_debug_info(path)
                onnx.checker.check_model(str(path))
                entry.update(describe(path))
                entry["ort_vs_torch"] = float(f"{ort_error(path, module, args, inputs):.2g}")
            except Exception as exc:  # a failed export is recorded in the manifest, not fatal
                traceback.print_exc()
                path.unlink(missing_ok=True)
                entry.update(file=None, error=first_line(exc))
            print(f"{stem}-{exporter}: {entry.get('size', entry.get('error'))}", flush=True)
            entries.append(entry)
    return entries


def write_manifest(entries: list[dict]) -> None:
    """One line per export, so a diff shows which exports changed."""
    import onnxscript

    packages = (torch, torchvision, timm, transformers, onnx, onnxscript, onnxruntime)
    versions = json.dumps({m.__name__: m.__version__ for m in packages})
    lines = ",\n".join(f"  {json.dumps(e)}" for e in entries)
    MANIFEST.write_text(f'{{"generated_by": "tests/zoo/make_zoo.py",\n "versions": {versions},\n "models": [\n{lines}\n]}}\n')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", help="only these zoo models (default: all)")
    args = parser.parse_args()
    chosen = [z for z in ZOO if not args.models or z.name in args.models]
    if args.models and len(chosen) != len(set(args.models)):
        parser.error(f"unknown model; the zoo has {[z.name for z in ZOO]}")
    old = json.loads(MANIFEST.read_text())["models"] if MANIFEST.exists() and args.models else []
    entries = [e for e in old if e["model"] not in {z.name for z in chosen}]
    for zoo in chosen:
        entries.extend(generate(zoo))
    order = [z.name for z in ZOO]
    entries.sort(key=lambda e: (order.index(e["model"]), e["variant"], EXPORTERS.index(e["exporter"])))
    write_manifest(entries)
    total = sum(e.get("size", 0) for e in entries)
    print(f"{len(entries)} exports, {sum(1 for e in entries if e['file'])} written, {total / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
