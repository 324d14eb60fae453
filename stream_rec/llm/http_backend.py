"""Rerank through any OpenAI-compatible ``/v1/completions`` endpoint (aiohttp, with timeouts).

Two methods, both unable to return anything but offered ids:

``choice`` (default; llama.cpp servers)
    The history prefix is the prompt; a GBNF grammar allows exactly the offered candidate
    texts as the completion, so greedy decoding *picks* one. Repeated ``picks`` times
    without the chosen ones; the rest follow in fast order. The answer must equal one
    remaining candidate text exactly, else :class:`InvalidRerank`. ``llama_cpp.server``
    and llama.cpp's ``llama-server`` accept ``grammar``; each pick reuses the server's
    cached prompt.
``echo``
    One request per candidate: prompt = prefix + candidate, ``echo`` with ``logprobs``;
    the score is the mean log-probability of the candidate's first ``max_candidate_tokens``
    tokens (the tokens at or after the prefix's last character). This is the portable way
    (vLLM and others) but ``llama_cpp.server`` 0.3.36 sorts the whole 262k-token
    vocabulary in Python for every echoed token: ~0.3 s per token, ~13 s per candidate
    for a 47-token prompt (docs/ab-testing.md), so it is not the default.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import PurePath
from typing import Any

import aiohttp

from stream_rec.errors import InvalidRerank, ModelError, ModelTimeout
from stream_rec.llm.messages import RerankRequest
from stream_rec.llm.prompt import rerank_prompt
from stream_rec.model import prompts

__all__ = ["OpenAIBackend", "choice_grammar", "echo_score", "parse_choice"]

_MAX_CHOICE_TOKENS = 128  # a sanitised title is at most 80 characters


class OpenAIBackend:
    """A rerank backend that talks to ``{base_url}/completions``."""

    def __init__(self, base_url: str, *, model: str = "", api_key: str = "",
                 method: str = "choice", picks: int = 3, max_candidate_tokens: int = 6,
                 connect_timeout_s: float = 2.0) -> None:
        if method not in ("choice", "echo"):
            raise ModelError(f"OpenAIBackend: method must be 'choice' or 'echo', got {method!r}")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.method = method
        self.picks = max(1, picks)
        self.max_candidate_tokens = max_candidate_tokens
        self.connect_timeout_s = connect_timeout_s
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._session: aiohttp.ClientSession | None = None
        self.name = f"openai:{model or 'server-default'}"

    async def start(self) -> None:
        """Open the session and ask ``/models`` (which model, and is the server there?)."""
        self._session = aiohttp.ClientSession(headers=self._headers)
        data = await self._request("GET", "/models", None, timeout_s=10.0)
        models = data.get("data") if isinstance(data, dict) else None
        served = [str(m.get("id")) for m in models or [] if isinstance(m, dict) and m.get("id")]
        if not self.model:
            if not served:
                raise ModelError(f"{self.base_url}/models lists no model: set "
                                 "STREAM_REC_LLM_MODEL to the model the server should use")
            self.model = served[0]
        self.name = f"openai:{_short(self.model)}"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def rerank(self, request: RerankRequest, *, timeout_s: float) -> list[str]:
        started = time.monotonic()
        prefix, texts = rerank_prompt(request)
        ids = [c.item_id for c in request.candidates]

        def left() -> float:
            remaining = timeout_s - (time.monotonic() - started)
            if remaining <= 0:
                raise ModelTimeout(f"rerank missed its {timeout_s * 1000:.0f} ms budget")
            return remaining

        if self.method == "echo":
            scores = await self.echo_scores(prefix, texts, timeout_s=timeout_s)
            return [item_id for item_id, _ in prompts.rerank(ids, scores)]
        remaining = list(range(len(texts)))
        picked: list[int] = []
        for _ in range(min(self.picks, len(texts) - 1)):
            options = [texts[i] for i in remaining]
            body = {"model": self.model, "prompt": prefix, "max_tokens": _MAX_CHOICE_TOKENS,
                    "temperature": 0.0, "grammar": choice_grammar(options)}
            response = await self._request("POST", "/completions", body, timeout_s=left())
            chosen = remaining[parse_choice(response, options)]
            picked.append(chosen)
            remaining.remove(chosen)
        return [ids[i] for i in picked]

    async def echo_scores(self, prefix: str, texts: Sequence[str], *,
                          timeout_s: float) -> list[float]:
        """Mean log-probability of each text's first tokens after ``prefix`` (one echo
        request per text, all within ``timeout_s``)."""
        started = time.monotonic()
        scores = []
        for text in texts:
            left = timeout_s - (time.monotonic() - started)
            if left <= 0:
                raise ModelTimeout(f"echo scoring missed its {timeout_s * 1000:.0f} ms budget")
            body = {"model": self.model, "prompt": prefix + text, "max_tokens": 1,
                    "echo": True, "logprobs": 0, "temperature": 0.0}
            response = await self._request("POST", "/completions", body, timeout_s=left)
            scores.append(echo_score(response, len(prefix), len(prefix) + len(text),
                                     self.max_candidate_tokens))
        return scores

    async def _request(self, method: str, path: str, body: Mapping[str, Any] | None, *,
                       timeout_s: float) -> Any:
        if self._session is None:
            raise ModelError("OpenAIBackend used before start()")
        timeout = aiohttp.ClientTimeout(total=timeout_s,
                                        connect=min(self.connect_timeout_s, timeout_s))
        url = self.base_url + path
        try:
            async with self._session.request(method, url, json=body, timeout=timeout) as resp:
                text = await resp.text()
                if resp.status != 200:
                    raise ModelError(f"{method} {url} answered HTTP {resp.status}: "
                                     f"{text[:200]!r}")
                try:
                    return await resp.json(content_type=None)
                except ValueError as exc:
                    raise InvalidRerank(f"{url} answered non-JSON: {text[:120]!r}") from exc
        except TimeoutError as exc:
            raise ModelTimeout(f"{method} {url} took longer than {timeout_s:.2f} s") from exc
        except aiohttp.ClientError as exc:
            raise ModelError(f"cannot reach the LLM server at {url}: {exc}; is it running? "
                             "(STREAM_REC_LLM_URL)") from exc


def choice_grammar(options: Sequence[str]) -> str:
    """A GBNF grammar whose only sentences are ``options`` (JSON-style escaped literals).

    >>> choice_grammar([' RED "MUG"', ' BAG'])
    'root ::= " RED \\\\"MUG\\\\"" | " BAG"'
    """
    if not options:
        raise ValueError("choice_grammar needs at least one option")
    return "root ::= " + " | ".join(_literal(o) for o in dict.fromkeys(options))


def parse_choice(response: Any, options: Sequence[str]) -> int:
    """Index of the option the completion spelled out exactly (the first, if repeated).

    Raises :class:`InvalidRerank` for anything else: a missing text, or one that is not an
    offered option (a server that ignored the grammar, a truncated answer).
    """
    text = _first_choice(response).get("text")
    if not isinstance(text, str):
        raise InvalidRerank(f"completion has no text: {str(response)[:120]}")
    for i, option in enumerate(options):
        if text == option or text.strip() == option.strip():
            return i
    raise InvalidRerank(f"the model answered {text[:80]!r}, which is not one of the "
                        f"{len(options)} offered candidates (does the server honour "
                        "'grammar'? if not, use STREAM_REC_LLM_METHOD=echo)")


def echo_score(response: Any, start_char: int, end_char: int, max_tokens: int) -> float:
    """Mean log-probability of the echoed tokens in ``[start_char, end_char)`` (the
    candidate), over at most its first ``max_tokens`` tokens."""
    logprobs = _first_choice(response).get("logprobs")
    if not isinstance(logprobs, dict):
        raise InvalidRerank("completion has no logprobs: does the server support echo with "
                            "logprobs? (else use STREAM_REC_LLM_METHOD=choice)")
    offsets, values = logprobs.get("text_offset"), logprobs.get("token_logprobs")
    if not isinstance(offsets, list) or not isinstance(values, list) or \
            len(offsets) != len(values):
        raise InvalidRerank("logprobs lack matching text_offset and token_logprobs lists")
    picked = [float(v) for off, v in zip(offsets, values, strict=True)
              if isinstance(off, int) and start_char <= off < end_char
              and isinstance(v, int | float)][:max_tokens]
    if not picked:
        raise InvalidRerank(f"no token log-probabilities between characters {start_char} and "
                            f"{end_char} of the echoed prompt")
    return sum(picked) / len(picked)


def _first_choice(response: Any) -> Mapping[str, Any]:
    choices = response.get("choices") if isinstance(response, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise InvalidRerank(f"completion has no choices: {str(response)[:120]}")
    return choices[0]


def _literal(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _short(model: str) -> str:
    """A readable model name: a served file path becomes its lower-case stem."""
    if "/" in model or model.endswith(".gguf"):
        return PurePath(model).stem.lower()
    return model
