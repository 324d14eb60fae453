"""Memory of one model instance by what it is made for: embeddings, scoring, or both.

    python bench/model_contexts.py            # the default model (Gemma 3 270M Q4_K_M)
    python bench/model_contexts.py --model PATH

For each use (both llama.cpp contexts, as every instance had before 2026-12-07; only the
embedding context, as the embedder process loads it; only the scoring context, as an LLM
rerank pool loads it), a fresh Python process loads the weights, then one instance, embeds
and scores a little with it (so lazily allocated buffers count), and reports its resident
memory: the model file's mapped pages, anonymous memory (where llama.cpp's buffers live)
and the instance's own cost (anonymous memory it added). One process per use, so memory
freed by an earlier instance cannot be reused by the next.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from stream_rec.config import Settings
from stream_rec.model.files import resolve_model_path
from stream_rec.model.llama import SlmModel, _Weights

TITLES = [f"SET OF {i} RED RETROSPOT CAKE TINS" for i in range(64)]
USES = {"both": (True, True), "embeddings": (True, False), "scoring": (False, True)}


def resident_mb() -> tuple[float, float]:
    """(file-backed, anonymous) resident MB of this process, from smaps_rollup."""
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines():
        name, _, rest = line.partition(":")
        if rest.strip().endswith("kB"):
            fields[name] = int(rest.split()[0]) / 1024
    return fields["Rss"] - fields["Anonymous"], fields["Anonymous"]


def measure(path: Path, use: str) -> None:
    """Load the weights, then one instance for ``use``; print its memory."""
    embeddings, scoring = USES[use]
    weights = _Weights(path).acquire()
    _, before = resident_mb()
    with SlmModel(path, embeddings=embeddings, scoring=scoring, _weights=weights) as model:
        if embeddings:
            model.embed(TITLES)
        if scoring:
            model.score_candidates("I bought candles.", TITLES[:8])
        file_mb, anon_mb = resident_mb()
    print(f"{use:10s}  RSS {file_mb + anon_mb:6.1f} MB (model file {file_mb:5.1f}, "
          f"anonymous {anon_mb:5.1f}); the instance's contexts {anon_mb - before:5.1f} MB",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=Settings().model_path,
                        help="GGUF path (default: the default model)")
    parser.add_argument("--use", choices=sorted(USES), help="measure one use in this process")
    args = parser.parse_args()
    if args.use:
        measure(resolve_model_path(args.model), args.use)
        return
    for use in USES:
        subprocess.run([sys.executable, __file__, "--model", args.model, "--use", use],
                       check=True, stderr=subprocess.DEVNULL)


if __name__ == "__main__":
    main()
