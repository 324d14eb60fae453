"""Item vectors from item text, for comparing sources: TF-IDF, the model's input-token mean,
and the model's contextual hidden states around a short prompt (cached on disk).

Every source reads the same text per item (:func:`stream_rec.model.semantic.item_text`:
sanitised title, then the category); the contextual source wraps it in
:data:`READING_PROMPT`, whose last token ("one word:") is where a causal model has read
the whole item.

>>> tfidf_vectors(["red heart", "red bag", "blue bag"]).shape
(3, 4)
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from stream_rec.model.files import sha256_file

__all__ = [
    "READING_PROMPT",
    "contextual_vectors",
    "input_token_vectors",
    "reading_prompt",
    "tfidf_vectors",
]

# PromptEOL-style: the last token of a causal model summarises the text it follows.
READING_PROMPT = 'This product: "{text}" means in one word:"'
_WORD = re.compile(r"[a-z0-9]+")
_MAX_PROMPT_TOKENS = 96


def reading_prompt(text: str) -> str:
    """The item text in the prompt the contextual source reads."""
    return READING_PROMPT.format(text=text)


def tfidf_vectors(texts: Sequence[str]) -> np.ndarray:
    """L2-normalised TF-IDF rows (sublinear tf, smoothed idf) of lower-cased word tokens.

    The vocabulary is every word of ``texts`` (the catalog, which carries no behaviour),
    columns in sorted order.
    """
    docs = [Counter(_WORD.findall(text.lower())) for text in texts]
    vocab = {word: j for j, word in enumerate(sorted(set().union(*docs)))}
    df = np.zeros(len(vocab), np.float64)
    for doc in docs:
        df[[vocab[w] for w in doc]] += 1
    idf = np.log((1 + len(docs)) / (1 + df)) + 1.0
    out = np.zeros((len(docs), len(vocab)), np.float32)
    for i, doc in enumerate(docs):
        for word, n in doc.items():
            j = vocab[word]
            out[i, j] = (1.0 + math.log(n)) * idf[j]
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    unit: np.ndarray = out / np.maximum(norms, 1e-12)
    return unit


def input_token_vectors(model_path: Path, texts: Sequence[str], cache_dir: Path) -> np.ndarray:
    """The served default: mean of the model's input token embeddings of each text."""
    key = _cache_key(model_path, "input", texts, ())
    path = cache_dir / f"input-{key}.npz"
    if path.exists():
        return np.asarray(np.load(path)["input"])
    # lazy: llama_cpp loads a native library: only an uncached run needs it
    from stream_rec.model.llama import SlmModel

    with SlmModel(model_path, n_threads=1) as model:
        vectors = model.embed(list(texts))
    _save(path, {"input": vectors})
    return vectors


def contextual_vectors(model_path: Path, texts: Sequence[str], layers: Sequence[int],
                       cache_dir: Path, *, batch: int = 256,
                       progress: bool = False) -> dict[str, np.ndarray]:
    """Hidden states of ``layers`` with :data:`READING_PROMPT` around each text, pooled two
    ways: ``"L{layer}-mean"`` (mean of the per-token unit states) and ``"L{layer}-last"``
    (the last token's state). One pass per batch captures every layer (1 thread)."""
    prompts = [reading_prompt(text) for text in texts]
    key = _cache_key(model_path, "contextual", prompts, tuple(sorted(set(layers))))
    path = cache_dir / f"contextual-{key}.npz"
    if path.exists():
        with np.load(path) as found:
            return {name: np.asarray(found[name]) for name in found.files}
    # lazy: llama_cpp loads a native library: only an uncached run needs it
    from stream_rec.model.llama import SlmModel

    parts: dict[str, list[np.ndarray]] = {}
    with SlmModel(model_path, n_threads=1, max_text_tokens=_MAX_PROMPT_TOKENS) as model:
        for start in range(0, len(prompts), batch):
            states = model.layer_states(prompts[start:start + batch], layers)
            for layer, pooled in states.items():
                parts.setdefault(f"L{layer}-mean", []).append(pooled.mean)
                parts.setdefault(f"L{layer}-last", []).append(pooled.last)
            if progress:
                print(f"  contextual: {min(start + batch, len(prompts))}/{len(prompts)} texts",
                      flush=True)
    vectors = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    _save(path, vectors)
    return vectors


def _cache_key(model_path: Path, kind: str, texts: Sequence[str],
               layers: tuple[int, ...]) -> str:
    digest = hashlib.sha256()
    digest.update(f"{sha256_file(model_path)}|{kind}|{layers}|{_MAX_PROMPT_TOKENS}".encode())
    for text in texts:
        digest.update(text.encode("utf-8", "replace") + b"\x00")
    return digest.hexdigest()[:16]


def _save(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npz")
    np.savez(partial, **arrays)  # type: ignore[arg-type]
    partial.replace(path)
