"""The torch-free BERT→GGUF conversion: llama-server's embeddings match a plain numpy forward pass of the
original safetensors weights, so nothing was lost or misnamed on the way."""

from __future__ import annotations

import math

import httpx
import numpy as np
import pytest
from safetensors.numpy import load_file

from fleetmind.llm import ModelConversionError
from fleetmind.llm.gguf_convert import gguf_tensor_name, packaged_model_dir

_erf = np.frompyfunc(math.erf, 1, 1)


def _layer_norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


def reference_embedding(weights: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """all-MiniLM-L6-v2 as sentence-transformers computes it: BERT encoder, mean over tokens, L2 norm."""
    w = {k: v.astype(np.float64) for k, v in weights.items() if v.dtype != np.int64}
    n = len(ids)
    x = w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:n]
    x = x + w["embeddings.token_type_embeddings.weight"][0]
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    heads, dim = 12, x.shape[1] // 12
    for layer in range(6):
        p = f"encoder.layer.{layer}."

        def dense(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return h @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        q, k, v = (
            dense(x, f"attention.self.{m}").reshape(n, heads, dim).transpose(1, 0, 2) for m in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(dim)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = (scores / scores.sum(-1, keepdims=True)) @ v
        attn = attn.transpose(1, 0, 2).reshape(n, -1)
        x = _layer_norm(
            x + dense(attn, "attention.output.dense"),
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
        )
        h = dense(x, "intermediate.dense")
        h = 0.5 * h * (1.0 + _erf(h / math.sqrt(2.0)).astype(np.float64))
        x = _layer_norm(x + dense(h, "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    pooled = x.mean(0)
    return pooled / np.linalg.norm(pooled)


def test_tensor_names_follow_llama_cpp() -> None:
    assert gguf_tensor_name("embeddings.word_embeddings.weight") == "token_embd.weight"
    assert gguf_tensor_name("embeddings.LayerNorm.bias") == "token_embd_norm.bias"
    assert gguf_tensor_name("encoder.layer.3.attention.self.query.weight") == "blk.3.attn_q.weight"
    assert gguf_tensor_name("encoder.layer.5.output.LayerNorm.weight") == "blk.5.layer_output_norm.weight"
    assert gguf_tensor_name("encoder.layer.0.intermediate.dense.bias") == "blk.0.ffn_up.bias"
    assert gguf_tensor_name("embeddings.position_ids") is None
    assert gguf_tensor_name("pooler.dense.weight") is None
    with pytest.raises(ModelConversionError, match="unexpected tensor"):
        gguf_tensor_name("encoder.layer.0.crossattention.weight")


@pytest.mark.parametrize(
    "text",
    ["The cat sat on the mat.", "How do I reverse a linked list in Python?", "Paris is the capital of France."],
)
def test_served_embedding_matches_the_original_model(embeddings_url: str, text: str) -> None:
    tokens = httpx.post(f"{embeddings_url}/tokenize", json={"content": text, "add_special": True}).json()["tokens"]
    assert tokens[0] == 101 and tokens[-1] == 102  # [CLS] ... [SEP], as BERT's tokenizer frames a sentence
    served = httpx.post(f"{embeddings_url}/v1/embeddings", json={"input": [text]}).json()["data"][0]["embedding"]
    served_v = np.array(served) / np.linalg.norm(served)
    weights = load_file(str(packaged_model_dir() / "model.safetensors"))
    cosine = float(served_v @ reference_embedding(weights, tokens))
    print(f"cosine {cosine:.6f}")
    # Q8_0 weights (fleetmind.llm.gguf_convert) keep a cosine of ~0.9995 to F16 and the original; a misnamed or
    # misplaced tensor falls far below this
    assert cosine > 0.999, cosine
