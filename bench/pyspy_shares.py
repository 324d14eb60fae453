"""Inclusive shares of the serving worker's main thread in a py-spy raw profile.

    py-spy record -p WORKER_PID -d 12 -r 100 -f raw --threads --idle -o prof.raw
    python bench/pyspy_shares.py prof.raw        # or prof.raw.gz

Prints a Markdown table: the share of the main thread's samples whose stack passes through
each part of the event handling and ranking path (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import gzip
import re
from pathlib import Path

ROWS: tuple[tuple[str, str], ...] = (
    ("EventHandler.handle_batch (all event handling)", r"handle_batch"),
    ("… Recommender.recommend (serving)", r"Recommender\.recommend \("),
    ("… … features.build_candidates", r"Recommender\.recommend \(.*build_candidates"),
    ("… … … TextSpace.neighbours_mix (the similar source)",
     r"Recommender\.recommend \(.*build_candidates.*neighbours_mix"),
    ("… … … TextSpace.cosines / query (model features)",
     r"Recommender\.recommend \(.*build_candidates.*TextSpace\.(cosines|query) "),
    ("… … … _covisit + _Covisit.best / at (co-visitation)",
     r"Recommender\.recommend \(.*build_candidates.*;_(covisit|Covisit\.\w+) "),
    ("… … … buy_again", r"Recommender\.recommend \(.*build_candidates.*buy_again"),
    ("… … … ItemStats.trending + category_trending",
     r"Recommender\.recommend \(.*build_candidates.*(ItemStats\.trending|category_trending)"),
    ("… … rank_candidates (score, order, reasons)", r"Recommender\.recommend \(.*rank_candidates"),
    ("… StreamLearner.on_event (the label step)", r"StreamLearner\.on_event"),
    ("… Recommender.observe (fold into the profile)", r"Recommender\.observe"),
)


def main_thread_stacks(path: Path) -> list[tuple[str, int]]:
    """(stack, samples) of the main thread from a py-spy ``--format raw --threads`` file."""
    opener = gzip.open if path.suffix == ".gz" else open
    stacks = []
    with opener(path, "rt") as lines:
        for line in lines:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if "MainThread" in stack.split(";", 1)[0]:
                stacks.append((stack, int(count)))
    return stacks


def table(stacks: list[tuple[str, int]]) -> str:
    total = sum(n for _, n in stacks) or 1
    lines = [f"| where ({total:,} main-thread samples) | share |", "|---|---|"]
    for name, pattern in ROWS:
        hits = sum(n for stack, n in stacks if re.search(pattern, stack))
        lines.append(f"| {name} | {100 * hits / total:.1f} % |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile", type=Path)
    print(table(main_thread_stacks(parser.parse_args().profile)))


if __name__ == "__main__":
    main()
