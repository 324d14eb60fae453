"""Regenerate the vendored data samples from the shared datasets, deterministically.

    python scripts/make_samples.py [--shared ../shared/data]

Writes
  stream_rec/data/online_retail_demo.jsonl.gz     demo stream (wire events, time order)
  stream_rec/data/online_retail_catalog.jsonl.gz  the catalog items those events use
  tests/data/movielens/{ratings,movies}.csv        20 users, original format
  tests/data/online_retail/online_retail.csv.gz    30 customers, original format
  tests/data/amazon_minionerec/Industrial_and_Scientific.*   20 users, original format

Subsets are chosen by SHA-256 of a fixed salt and the id, so every run writes the same
bytes (gzip with mtime 0 and no file name).
"""

from __future__ import annotations

import argparse
import ast
import csv
import gzip
import hashlib
import io
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from stream_rec.datasets import load_dataset
from stream_rec.datasets.demo import CATALOG_FILE, EVENTS_FILE, write_jsonl_gz

ROOT = Path(__file__).resolve().parents[1]
DEMO_CUSTOMERS = 800
AMAZON_CATEGORY = "Industrial_and_Scientific"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=ROOT.parent / "shared" / "data",
                        help="directory holding online-retail/, movielens-latest-small/ ...")
    args = parser.parse_args(argv)
    shared: Path = args.shared
    make_demo(shared / "online-retail", ROOT / "stream_rec" / "data")
    make_movielens(shared / "movielens-latest-small", ROOT / "tests" / "data" / "movielens")
    make_online_retail(shared / "online-retail", ROOT / "tests" / "data" / "online_retail")
    make_amazon(shared / "amazon18-industrial-scientific-minionerec",
                ROOT / "tests" / "data" / "amazon_minionerec")


def rank(ids: Iterable[str], salt: str) -> list[str]:
    """Ids in a fixed pseudo-random order."""
    return sorted(set(ids), key=lambda i: hashlib.sha256(f"{salt}:{i}".encode()).hexdigest())


def make_demo(src: Path, out: Path) -> None:
    dataset = load_dataset("online-retail", src)
    chosen = set(rank((e.user_id for e in dataset.events), "stream-rec-demo")[:DEMO_CUSTOMERS])
    events = [e for e in dataset.events if e.user_id in chosen]
    used = {e.item_id for e in events}
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl_gz(out / EVENTS_FILE, (e.to_dict() for e in events))
    write_jsonl_gz(out / CATALOG_FILE,
                   (item.to_dict() for item in dataset.catalog if item.item_id in used))
    print(f"demo: {len(chosen)} customers, {len(events)} events, {len(used)} items")


def make_movielens(src: Path, out: Path) -> None:
    header, rows = read_csv(src / "ratings.csv")
    per_user: dict[str, list[list[str]]] = defaultdict(list)
    for row in rows:
        per_user[row[0]].append(row)
    small = [u for u in per_user if len(per_user[u]) <= 100]
    chosen = set(rank(small, "stream-rec-ml")[:20])
    kept = [row for row in rows if row[0] in chosen]
    movies = {row[1] for row in kept}
    m_header, m_rows = read_csv(src / "movies.csv")
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "ratings.csv", header, kept)
    write_csv(out / "movies.csv", m_header, [row for row in m_rows if row[0] in movies])
    print(f"movielens: {len(chosen)} users, {len(kept)} ratings, {len(movies)} movies")


def make_online_retail(src: Path, out: Path) -> None:
    header, rows = read_csv(src / "online_retail.csv.gz")
    inv, code, qty, date, cust = (header.index(c) for c in
                                  ("InvoiceNo", "StockCode", "Quantity", "InvoiceDate",
                                   "CustomerID"))
    per_customer: dict[str, list[list[str]]] = defaultdict(list)
    for row in rows:
        if row[cust]:
            per_customer[row[cust]].append(row)
    order = rank(per_customer, "stream-rec-or")

    def first(rule: Callable[[str], bool]) -> str:
        return next(c for c in order if len(per_customer[c]) <= 150 and rule(c))

    times: dict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        times[(row[inv], row[code])].add(row[date])
    split_line = {row[cust] for row in rows
                  if row[cust] and len(times[(row[inv], row[code])]) > 1}
    features = [
        # an (invoice, item) whose lines carry two timestamps (the smallest such customer)
        min(split_line, key=lambda c: (len(per_customer[c]), c)),
        # exact duplicate rows
        first(lambda c: len({tuple(r) for r in per_customer[c]}) < len(per_customer[c])),
        # a cancellation and a postage line
        first(lambda c: any(r[inv].startswith("C") for r in per_customer[c])
              and any(r[code] == "POST" for r in per_customer[c])),
    ]
    plain = [c for c in order if len(per_customer[c]) <= 60 and c not in features]
    chosen = set(features + plain[: 30 - len(features)])
    # plus one small invoice without a customer, which the loader must drop
    anonymous: dict[str, list[list[str]]] = defaultdict(list)
    for row in rows:
        if not row[cust]:
            anonymous[row[inv]].append(row)
    no_customer = next(i for i in sorted(anonymous) if 3 <= len(anonymous[i]) <= 10
                       and all(int(r[qty]) > 0 for r in anonymous[i]))
    kept = [row for row in rows if row[cust] in chosen or row[inv] == no_customer]
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "online_retail.csv.gz", header, kept)
    print(f"online retail: {len(chosen)} customers, {len(kept)} rows")


def make_amazon(src: Path, out: Path) -> None:
    splits = {s: read_csv(src / f"{AMAZON_CATEGORY}.{s}.csv.gz") for s in ("valid", "test")}
    users = {s: {row[0] for row in rows} for s, (_, rows) in splits.items()}
    both = rank(users["valid"] & users["test"], "stream-rec-az")
    only_test = rank(users["test"] - users["valid"], "stream-rec-az")
    only_valid = rank(users["valid"] - users["test"], "stream-rec-az")
    chosen = set(both[:10] + only_test[:5] + only_valid[:5])
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    for split, (header, rows) in splits.items():
        kept = [row for row in rows if row[0] in chosen]
        hist, target = header.index("history_item_id"), header.index("item_id")
        for row in kept:
            used.update(str(i) for i in ast.literal_eval(row[hist]))
            used.add(row[target])
        write_csv(out / f"{AMAZON_CATEGORY}.{split}.csv.gz", header, kept)
    with gzip.open(src / f"{AMAZON_CATEGORY}.item.json.gz", "rt", encoding="utf-8") as f:
        meta: dict[str, object] = json.load(f)
    unused = [i for i in sorted(meta, key=int) if i not in used][:5]
    keep = sorted(used | set(unused), key=int)
    write_gz(out / f"{AMAZON_CATEGORY}.item.json.gz",
             json.dumps({i: meta[i] for i in keep}, indent=2, ensure_ascii=False) + "\n")
    with gzip.open(src / f"{AMAZON_CATEGORY}.info.tsv.gz", "rt", encoding="utf-8") as f:
        info = [line for line in f if line.rstrip("\n").split("\t")[2] in set(keep)]
    write_gz(out / f"{AMAZON_CATEGORY}.info.tsv.gz", "".join(info))
    print(f"amazon: {len(chosen)} users, {len(keep)} catalog items")


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            reader = csv.reader(f)
            return next(reader), list(reader)
    with path.open(encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        return next(reader), list(reader)


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    if path.suffix == ".gz":
        write_gz(path, buffer.getvalue())
    else:
        path.write_text(buffer.getvalue(), encoding="utf-8")


def write_gz(path: Path, text: str) -> None:
    with path.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw,
                                              compresslevel=9, mtime=0) as out:
        out.write(text.encode("utf-8"))


if __name__ == "__main__":
    main()
