"""The llama.cpp adapter: the only module that imports ``llama_cpp``.

:class:`SlmModel` wraps one loaded GGUF and two llama.cpp contexts (one for embeddings,
one for log-likelihood scoring); it is serialised by a lock. A
:class:`~stream_rec.model.pool.ModelPool` runs N of them on worker threads off the asyncio
loop (built by ``stream_rec.model.loading``).

Embeddings skip the 262k-token output layer: an eval callback reads the hidden states of
one layer and stops the graph there (see ``docs/model.md`` for what was measured). The
default, ``embed_mode="input"``, averages the model's input token embeddings; it matched
the contextual layers on next-item retrieval at ~1/50 of the cost.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import llama_cpp
import numpy as np

from stream_rec.errors import ModelError
from stream_rec.model.files import sha256_file

__all__ = [
    "CandidateScores",
    "EmbedMode",
    "LayerStates",
    "SlmModel",
    "SpeedReport",
]

log = logging.getLogger(__name__)

EmbedMode = Literal["input", "hidden"]
_GGML_TYPE_F32 = 0
# Full-vocabulary logits cost 1 MiB per row (262,144 floats) in the output buffer and again
# in the compute buffer, so a scoring decode asks for at most this many rows.
_MAX_LOGIT_ROWS = 64
_EMBED_BATCH_TOKENS = 1024


@dataclass(frozen=True, slots=True)
class CandidateScores:
    """Log-likelihood of each candidate after a prefix: per-token mean, sum and token count."""

    mean: np.ndarray
    total: np.ndarray
    n_tokens: np.ndarray


@dataclass(frozen=True, slots=True)
class LayerStates:
    """One layer's hidden states, pooled per text, shape ``(n_texts, dim)`` each.

    ``mean``: mean over the text's tokens (BOS excluded) of each token's L2-normalised state,
    as ``embed_mode="hidden"`` pools; ``last``: the raw state of the text's last token.
    """

    mean: np.ndarray
    last: np.ndarray


@dataclass(frozen=True, slots=True)
class SpeedReport:
    """Throughput measured by :meth:`SlmModel.measure_speed`."""

    prefill_tok_s: float
    gen_tok_s: float
    embed_ms_per_title: float


class _GgmlTensor(ctypes.Structure):
    """Layout of ``struct ggml_tensor`` (ggml.h, GGML_MAX_DIMS=4, MAX_SRC=10, MAX_NAME=64)."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("buffer", ctypes.c_void_p),
        ("ne", ctypes.c_int64 * 4),
        ("nb", ctypes.c_size_t * 4),
        ("op", ctypes.c_int),
        ("op_params", ctypes.c_int32 * 16),
        ("flags", ctypes.c_int32),
        ("src", ctypes.c_void_p * 10),
        ("view_src", ctypes.c_void_p),
        ("view_offs", ctypes.c_size_t),
        ("data", ctypes.c_void_p),
        ("name", ctypes.c_char * 64),
        ("extra", ctypes.c_void_p),
        ("padding", ctypes.c_char * 8),
    ]


# ----- process-wide llama.cpp setup: backend init once, log lines to `logging` -----------------
_init_lock = threading.Lock()
_initialised = False
_recent_errors: deque[str] = deque(maxlen=8)


def _on_log(level: int, text: bytes, _user: Any) -> None:
    line = text.decode("utf-8", "replace").rstrip()
    if not line:
        return
    if level in (3, 4, 5):  # GGML_LOG_LEVEL_WARN, _ERROR, _CONT
        _recent_errors.append(line)
    log.debug("llama.cpp: %s", line)


_LOG_CALLBACK = llama_cpp.llama_log_callback(_on_log)


def _ensure_backend() -> None:
    global _initialised
    with _init_lock:
        if not _initialised:
            llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
            llama_cpp.llama_backend_init()
            _initialised = True


class _Weights:
    """One loaded GGUF, shared by the contexts of several :class:`SlmModel` instances."""

    def __init__(self, path: Path) -> None:
        _ensure_backend()
        self.path = path
        _recent_errors.clear()
        params = llama_cpp.llama_model_default_params()
        handle = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
        if not handle:
            detail = "; ".join(line for line in _recent_errors if "error" in line.lower())
            raise ModelError(
                f"cannot load model file {path}: {detail or 'llama.cpp rejected it'}; the file "
                "is corrupt, truncated or not a supported GGUF: replace it or unset "
                "STREAM_REC_MODEL_PATH to use the default model"
            )
        self.handle = handle
        self.vocab = llama_cpp.llama_model_get_vocab(handle)
        self.n_vocab = int(llama_cpp.llama_vocab_n_tokens(self.vocab))
        self.n_embd = int(llama_cpp.llama_model_n_embd(handle))
        self.n_layer = int(llama_cpp.llama_model_n_layer(handle))
        self.users = 0
        self.lock = threading.Lock()

    def acquire(self) -> _Weights:
        with self.lock:
            self.users += 1
        return self

    def release(self) -> None:
        with self.lock:
            self.users -= 1
            if self.users == 0 and self.handle:
                llama_cpp.llama_model_free(self.handle)
                self.handle = None


class SlmModel:
    """One llama.cpp model instance: embeddings and candidate log-likelihoods.

    Not thread-safe by design of llama.cpp contexts, so every call takes the instance lock;
    use a :class:`ModelPool` for concurrency. ``close()`` (or ``with``) frees it.

    Each use has its own llama.cpp context, ~50 MB of buffers apiece: ``embeddings=False``
    or ``scoring=False`` leaves one out for a process that never makes that call (the
    embedder process only embeds; an LLM rerank pool only scores). Calling it then raises
    :class:`ModelError`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        n_threads: int = 1,
        n_ctx: int = 1024,
        n_seq_max: int = 32,
        embed_mode: EmbedMode = "input",
        embed_layer: int | None = None,
        max_text_tokens: int = 48,
        embeddings: bool = True,
        scoring: bool = True,
        _weights: _Weights | None = None,
    ) -> None:
        if not (embeddings or scoring):
            raise ModelError("an SlmModel needs embeddings=True or scoring=True (or both)")
        if embed_mode not in ("input", "hidden"):
            raise ModelError(f"embed_mode must be 'input' or 'hidden', got {embed_mode!r}")
        if n_threads < 1 or n_ctx < 256 or not 2 <= n_seq_max <= 256:
            raise ModelError(
                f"bad model sizes n_threads={n_threads} n_ctx={n_ctx} n_seq_max={n_seq_max}: "
                "need n_threads >= 1, n_ctx >= 256 and 2 <= n_seq_max <= 256"
            )
        self.path = Path(path)
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.n_seq_max = n_seq_max
        self.embed_mode: EmbedMode = embed_mode
        self.max_text_tokens = max_text_tokens
        self.embeddings = embeddings
        self.scoring = scoring
        self._lock = threading.Lock()
        self._weights = (_weights or _Weights(self.path)).acquire()
        w = self._weights
        self.embed_layer = w.n_layer - 2 if embed_layer is None else embed_layer
        if not 0 <= self.embed_layer < w.n_layer - 1:
            w.release()
            raise ModelError(f"embed_layer must be in 0..{w.n_layer - 2}, got {embed_layer}")
        self._capture_name = (
            b"inp_scaled" if embed_mode == "input" else b"l_out-%d" % self.embed_layer
        )
        # what the eval callback copies (tensor name -> one array per ubatch) and where it stops
        self._capture_names = frozenset({self._capture_name})
        self._stop_name = self._capture_name
        self._captured: dict[bytes, list[np.ndarray]] = {}
        self._capture_error: str | None = None
        self._eval_cb = llama_cpp.ggml_backend_sched_eval_callback(self._on_eval)
        self._embed_ctx = self._score_ctx = None
        try:
            if embeddings:
                self._embed_ctx = self._new_context(_EMBED_BATCH_TOKENS, 512, n_seq_max,
                                                    self._eval_cb)
            if scoring:
                self._score_ctx = self._new_context(n_ctx, _MAX_LOGIT_ROWS, n_seq_max, None)
        except ModelError:
            if self._embed_ctx is not None:
                llama_cpp.llama_free(self._embed_ctx)
            self._weights.release()
            raise
        self._prefix_tokens: list[int] = []
        self._prefix_logprobs: np.ndarray | None = None
        self._closed = False

    # ----- lifecycle ---------------------------------------------------------------------------
    def sibling(
        self, *, n_threads: int | None = None, embed_mode: EmbedMode | None = None
    ) -> SlmModel:
        """Another instance on the same loaded weights (own contexts, own lock)."""
        return SlmModel(
            self.path,
            n_threads=self.n_threads if n_threads is None else n_threads,
            n_ctx=self.n_ctx,
            n_seq_max=self.n_seq_max,
            embed_mode=self.embed_mode if embed_mode is None else embed_mode,
            embed_layer=self.embed_layer,
            max_text_tokens=self.max_text_tokens,
            embeddings=self.embeddings,
            scoring=self.scoring,
            _weights=self._weights,
        )

    def close(self) -> None:
        """Free the contexts (and the weights when no sibling uses them)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for ctx in (self._embed_ctx, self._score_ctx):
                if ctx is not None:
                    llama_cpp.llama_free(ctx)
            self._weights.release()

    def __enter__(self) -> SlmModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dim(self) -> int:
        """Embedding size (640 for Gemma 3 270M)."""
        return self._weights.n_embd

    @property
    def model_key(self) -> str:
        """First 16 hex digits of the model file's sha256 (embedding-cache namespace)."""
        return sha256_file(self.path)[:16]

    # ----- tokens ------------------------------------------------------------------------------
    def tokenize(self, text: str, *, bos: bool) -> list[int]:
        """Token ids of ``text``; special-token markup in the text is NOT parsed."""
        raw = text.encode("utf-8", "replace")
        size = len(raw) + 8
        buf = (llama_cpp.llama_token * size)()
        n = llama_cpp.llama_tokenize(self._weights.vocab, raw, len(raw), buf, size, bos, False)
        if n < 0:
            raise ModelError(f"tokenizer needed {-n} slots for a {len(raw)}-byte text")
        return list(buf[:n])

    # ----- embeddings --------------------------------------------------------------------------
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised float32 embeddings, shape ``(len(texts), dim)``.

        Texts are cut at ``max_text_tokens`` tokens and embedded in batches of up to
        ``n_seq_max`` texts (1024 tokens) per llama.cpp call.
        """
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        with self._lock:
            self._check_open("embeddings")
            for first, token_lists in self._token_groups(texts):
                out[first : first + len(token_lists)] = self._embed_group(token_lists)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        normalised: np.ndarray = out / np.maximum(norms, 1e-12)
        return normalised

    embed_sync = embed  # the TextEmbedder protocol in stream_rec.model.vectors

    def layer_states(self, texts: Sequence[str], layers: Sequence[int]) -> dict[int, LayerStates]:
        """Mean- and last-token-pooled hidden states of each of ``layers`` for every text.

        One forward pass per batch captures every wanted layer and stops after the deepest
        (the output layer never runs). Texts are cut at ``max_text_tokens`` tokens, like
        :meth:`embed`; layers must be in ``0..n_layer-2``.
        """
        wanted = sorted(set(layers))
        top = self._weights.n_layer - 2
        if not wanted or wanted[0] < 0 or wanted[-1] > top:
            raise ModelError(f"layers must be a non-empty subset of 0..{top}, got {list(layers)}")
        names = {layer: b"l_out-%d" % layer for layer in wanted}
        means = {layer: np.zeros((len(texts), self.dim), np.float32) for layer in wanted}
        lasts = {layer: np.zeros((len(texts), self.dim), np.float32) for layer in wanted}
        with self._lock:
            self._check_open("embeddings")
            self._capture_names = frozenset(names.values())
            self._stop_name = names[wanted[-1]]
            try:
                for first, token_lists in self._token_groups(texts):
                    spans, captured = self._capture(token_lists)
                    rows = slice(first, first + len(token_lists))
                    for layer, name in names.items():
                        hidden = captured[name]
                        unit = hidden / np.maximum(
                            np.linalg.norm(hidden, axis=1, keepdims=True), 1e-6
                        )
                        means[layer][rows] = _mean_without_bos(unit, spans)
                        lasts[layer][rows] = hidden[[b - 1 for _, b in spans]]
            finally:
                self._capture_names = frozenset({self._capture_name})
                self._stop_name = self._capture_name
        return {layer: LayerStates(means[layer], lasts[layer]) for layer in wanted}

    def _token_groups(self, texts: Sequence[str]) -> list[tuple[int, list[list[int]]]]:
        """Texts as token lists, grouped into batches of at most ``n_seq_max`` texts and
        1024 tokens: (index of the group's first text, its token lists)."""
        groups: list[tuple[int, list[list[int]]]] = []
        group: list[list[int]] = []
        start, n_tok = 0, 0
        for i, text in enumerate(texts):
            toks = self.tokenize(text, bos=True)[: self.max_text_tokens]
            if group and (len(group) >= self.n_seq_max or n_tok + len(toks) > _EMBED_BATCH_TOKENS):
                groups.append((start, group))
                start, group, n_tok = i, [], 0
            group.append(toks)
            n_tok += len(toks)
        if group:
            groups.append((start, group))
        return groups

    def _embed_group(self, token_lists: list[list[int]]) -> np.ndarray:
        spans, captured = self._capture(token_lists)
        hidden = captured[self._capture_name]
        if self.embed_mode == "hidden":
            hidden = hidden / np.maximum(np.linalg.norm(hidden, axis=1, keepdims=True), 1e-6)
        return _mean_without_bos(hidden, spans)

    def _capture(
        self, token_lists: list[list[int]]
    ) -> tuple[list[tuple[int, int]], dict[bytes, np.ndarray]]:
        """Decode one batch on the embedding context; each captured tensor, all tokens."""
        ctx = self._embed_ctx
        self._captured, self._capture_error = {}, None
        spans = self._decode(ctx, token_lists, outputs="one")
        llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
        if self._capture_error:
            raise ModelError(f"embedding capture failed: {self._capture_error}")
        out: dict[bytes, np.ndarray] = {}
        for name in self._capture_names:
            chunks = self._captured.get(name, [])
            hidden = np.concatenate(chunks) if chunks else np.zeros((0, self.dim), np.float32)
            if hidden.shape[0] != spans[-1][1]:
                other = "hidden" if self.embed_mode == "input" else "input"
                raise ModelError(
                    f"embedding capture saw {hidden.shape[0]} of {spans[-1][1]} tokens of "
                    f"graph tensor {name.decode()!r}: this model's graph names it "
                    f"differently; try embed_mode={other!r}"
                )
            out[name] = hidden
        return spans, out

    def _on_eval(self, tensor: int, ask: bool, _user: Any) -> bool:
        """ggml eval callback: copy the wanted tensors, stop the graph after the last one."""
        t = ctypes.cast(tensor, ctypes.POINTER(_GgmlTensor)).contents
        name = bytes(t.name)
        if name not in self._capture_names:
            return not ask
        if ask:
            return True
        ne0, ne1 = int(t.ne[0]), int(t.ne[1])
        if t.type != _GGML_TYPE_F32 or t.nb[0] != 4 or t.nb[1] != ne0 * 4 or not t.data:
            self._capture_error = f"tensor {name!r} is not a contiguous f32 host tensor"
            return False
        buf = (ctypes.c_float * (ne0 * ne1)).from_address(t.data)
        self._captured.setdefault(name, []).append(
            np.ctypeslib.as_array(buf).reshape(ne1, ne0).copy()
        )
        return name != self._stop_name  # stop: nothing after the deepest wanted layer is needed

    # ----- log-likelihood scoring -----------------------------------------------------------------
    def score_candidates(
        self,
        prefix: str,
        candidates: Sequence[str],
        *,
        max_candidate_tokens: int = 6,
        reduce: Literal["mean", "sum"] = "mean",
    ) -> np.ndarray:
        """Log-likelihood of each candidate as a continuation of ``prefix`` (mean per token)."""
        scores = self.log_likelihoods(prefix, candidates, max_candidate_tokens=max_candidate_tokens)
        return scores.mean if reduce == "mean" else scores.total

    def log_likelihoods(
        self,
        prefix: str,
        candidates: Sequence[str],
        *,
        max_candidate_tokens: int = 6,
        max_prefix_tokens: int = 512,
        reuse_prefix: bool = True,
    ) -> CandidateScores:
        """Per-candidate log-likelihoods, all candidates sharing one evaluated prefix.

        The prefix is decoded once into sequence 0 (and kept for the next call with the same
        prefix); each candidate gets its own sequence that shares the prefix's KV cells
        (``llama_memory_seq_cp``), and all candidates are decoded in one batch. Each
        candidate is cut at ``max_candidate_tokens`` tokens. ``reuse_prefix=False`` forgets
        the kept prefix first (to measure the cold cost).
        """
        n = len(candidates)
        total = np.zeros(n, dtype=np.float64)
        counts = np.zeros(n, dtype=np.int64)
        if n == 0:
            return CandidateScores(total.astype(np.float32), total, counts)
        cand_tokens = [
            self.tokenize(c, bos=False)[:max_candidate_tokens] or [self._space_token()]
            for c in candidates
        ]
        with self._lock:
            self._check_open("scoring")
            if not reuse_prefix:
                self._prefix_tokens, self._prefix_logprobs = [], None
            first = self._prepare_prefix(self.tokenize(prefix, bos=True), max_prefix_tokens)
            n_prefix = len(self._prefix_tokens)
            for i, toks in enumerate(cand_tokens):
                total[i] += first[toks[0]]
                counts[i] = len(toks)
            budget = min(self.n_ctx - n_prefix - 1, _MAX_LOGIT_ROWS)
            chunk: list[int] = []
            used = 0
            for i, toks in enumerate(cand_tokens):
                need = len(toks) - 1
                if need == 0:
                    continue
                if chunk and (len(chunk) >= self.n_seq_max - 1 or used + need > budget):
                    self._score_chunk(chunk, cand_tokens, n_prefix, total)
                    chunk, used = [], 0
                chunk.append(i)
                used += need
            if chunk:
                self._score_chunk(chunk, cand_tokens, n_prefix, total)
        mean = (total / np.maximum(counts, 1)).astype(np.float32)
        return CandidateScores(mean=mean, total=total, n_tokens=counts)

    def _prepare_prefix(self, tokens: list[int], max_tokens: int) -> np.ndarray:
        """Decode ``tokens`` into sequence 0, reusing the cached common prefix; log-probs of
        the next token."""
        if len(tokens) > max_tokens:
            tokens = tokens[:1] + tokens[-(max_tokens - 1) :]
        ctx = self._score_ctx
        mem = llama_cpp.llama_get_memory(ctx)
        cached = self._prefix_tokens
        if tokens == cached and self._prefix_logprobs is not None:
            return self._prefix_logprobs
        keep = 0  # longest common prefix with what sequence 0 holds, less one token
        while keep < min(len(cached), len(tokens) - 1) and cached[keep] == tokens[keep]:
            keep += 1
        if keep == 0 or not llama_cpp.llama_memory_seq_rm(mem, 0, keep, -1):
            llama_cpp.llama_memory_clear(mem, True)
            keep = 0
        self._prefix_tokens, self._prefix_logprobs = [], None
        self._decode(ctx, [tokens[keep:]], outputs="last", pos0=keep, seq_ids=[[0]])
        logits = self._logits(ctx, 1)
        self._prefix_tokens = list(tokens)
        self._prefix_logprobs = _log_softmax(logits)[0]
        return self._prefix_logprobs

    def _score_chunk(
        self, chunk: list[int], cand_tokens: list[list[int]], n_prefix: int, total: np.ndarray
    ) -> None:
        ctx = self._score_ctx
        mem = llama_cpp.llama_get_memory(ctx)
        for s in range(1, len(chunk) + 1):
            llama_cpp.llama_memory_seq_cp(mem, 0, s, -1, -1)
        try:
            inputs = [cand_tokens[i][:-1] for i in chunk]
            seq_ids = [[s] for s in range(1, len(chunk) + 1)]
            self._decode(ctx, inputs, outputs="all", pos0=n_prefix, seq_ids=seq_ids)
            logits = self._logits(ctx, sum(len(t) for t in inputs))
            rows: list[int] = []
            targets: list[int] = []
            owners: list[int] = []
            for i in chunk:
                toks = cand_tokens[i]
                for j in range(1, len(toks)):
                    rows.append(len(rows))
                    targets.append(toks[j])
                    owners.append(i)
            picked = logits[rows, targets] - _row_logsumexp(logits)[rows]
            np.add.at(total, owners, picked)
        finally:
            llama_cpp.llama_memory_seq_keep(mem, 0)

    def _logits(self, ctx: Any, n_rows: int) -> np.ndarray:
        ptr = llama_cpp.llama_get_logits(ctx)
        if not ptr:
            raise ModelError("llama.cpp returned no logits")
        flat = np.ctypeslib.as_array(ptr, shape=(n_rows * self._weights.n_vocab,))
        return flat.reshape(n_rows, self._weights.n_vocab)

    def _space_token(self) -> int:
        toks = self.tokenize(" ", bos=False)
        return toks[0] if toks else 0

    # ----- llama.cpp batches -----------------------------------------------------------------
    def _decode(
        self,
        ctx: Any,
        token_lists: list[list[int]],
        *,
        outputs: Literal["one", "last", "all"],
        pos0: int = 0,
        seq_ids: list[list[int]] | None = None,
    ) -> list[tuple[int, int]]:
        """One ``llama_decode`` of several sequences; returns each one's token span."""
        n_tokens = sum(len(t) for t in token_lists)
        batch = llama_cpp.llama_batch_init(n_tokens, 0, 1)
        spans: list[tuple[int, int]] = []
        try:
            k = 0
            for s, toks in enumerate(token_lists):
                start = k
                sid = s if seq_ids is None else seq_ids[s][0]
                for p, tok in enumerate(toks):
                    batch.token[k] = tok
                    batch.pos[k] = pos0 + p
                    batch.n_seq_id[k] = 1
                    batch.seq_id[k][0] = sid
                    last = p == len(toks) - 1
                    batch.logits[k] = outputs == "all" or (outputs == "last" and last)
                    k += 1
                spans.append((start, k))
            if outputs == "one":
                batch.logits[n_tokens - 1] = True
            batch.n_tokens = n_tokens
            rc = llama_cpp.llama_decode(ctx, batch)
        finally:
            llama_cpp.llama_batch_free(batch)
        if rc != 0:
            raise ModelError(
                f"llama_decode failed with status {rc} for {n_tokens} tokens in "
                f"{len(token_lists)} sequences (context {self.n_ctx}); use fewer or shorter texts"
            )
        return spans

    def _new_context(self, n_ctx: int, n_ubatch: int, n_seq_max: int, cb: Any) -> Any:
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = n_ctx
        params.n_batch = n_ctx
        params.n_ubatch = n_ubatch
        params.n_seq_max = n_seq_max
        params.n_threads = self.n_threads
        params.n_threads_batch = self.n_threads
        params.kv_unified = True  # shared prefix cells; one ubatch split keeps token order
        params.no_perf = True
        if cb is not None:
            params.cb_eval = cb
        ctx = llama_cpp.llama_init_from_model(self._weights.handle, params)
        if not ctx:
            raise ModelError(f"cannot create a llama.cpp context (n_ctx={n_ctx}) for {self.path}")
        return ctx

    def _check_open(self, use: Literal["embeddings", "scoring"]) -> None:
        if self._closed:
            raise ModelError("this SlmModel is closed; create a new one")
        if not getattr(self, use):
            raise ModelError(f"this SlmModel was created with {use}=False, so it has no "
                             f"context for that call: create one with {use}=True")

    # ----- measurement -------------------------------------------------------------------------
    def measure_speed(self, *, prompt_tokens: int = 200, gen_tokens: int = 32) -> SpeedReport:
        """Prefill and greedy-generation tokens/s, and embedding ms per title (batch of 32)."""
        titles = [f"SET OF {i} RED RETROSPOT CAKE TINS" for i in range(32)]
        self.embed(titles[:4])  # warm-up
        started = time.perf_counter()
        self.embed(titles)
        embed_ms = (time.perf_counter() - started) * 1000 / len(titles)
        with self._lock:
            self._check_open("scoring")
            ctx = self._score_ctx
            mem = llama_cpp.llama_get_memory(ctx)
            tokens = self.tokenize("The shop sells hearts, bags and tins. " * 40, bos=True)
            tokens = tokens[:prompt_tokens]
            llama_cpp.llama_memory_clear(mem, True)
            started = time.perf_counter()
            self._decode(ctx, [tokens], outputs="last")
            prefill = len(tokens) / (time.perf_counter() - started)
            nxt = int(np.argmax(self._logits(ctx, 1)[0]))
            started = time.perf_counter()
            for i in range(gen_tokens):
                self._decode(ctx, [[nxt]], outputs="last", pos0=len(tokens) + i)
                nxt = int(np.argmax(self._logits(ctx, 1)[0]))
            gen = gen_tokens / (time.perf_counter() - started)
            llama_cpp.llama_memory_clear(mem, True)
            self._prefix_tokens, self._prefix_logprobs = [], None
        return SpeedReport(prefill_tok_s=prefill, gen_tok_s=gen, embed_ms_per_title=embed_ms)


def _mean_without_bos(hidden: np.ndarray, spans: list[tuple[int, int]]) -> np.ndarray:
    """Mean of each span's rows, its first (BOS, identical for every text) excluded."""
    rows = [hidden[a + 1 : b].mean(0) if b - a > 1 else hidden[a] for a, b in spans]
    return np.asarray(rows, dtype=np.float32)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float32."""
    out: np.ndarray = logits - _row_logsumexp(logits)[:, None]
    return out


def _row_logsumexp(logits: np.ndarray, block: int = 32) -> np.ndarray:
    """``log(sum(exp(row)))`` per row, ``block`` rows at a time in one reused buffer."""
    n_rows, width = logits.shape
    out = np.empty(n_rows, dtype=np.float32)
    buf = np.empty((min(block, max(n_rows, 1)), width), dtype=np.float32)
    for a in range(0, n_rows, block):
        rows = logits[a : a + block]
        tmp = buf[: rows.shape[0]]
        peak = rows.max(axis=1)
        np.subtract(rows, peak[:, None], out=tmp)
        np.exp(tmp, out=tmp)
        out[a : a + rows.shape[0]] = peak + np.log(tmp.sum(axis=1))
    if not np.isfinite(out).all():
        log.warning("non-finite log-probabilities from the model")
    return out
