"""MovieLens (``ml-latest-small`` layout: ratings.csv, movies.csv) as a purchase stream.

Mapping, chosen so the recommender sees ratings as its strongest signal:

- every rating is one ``purchase`` event ("rated = consumed") with quantity 1, whatever the
  score; the score travels in ``context={"rating": 4.0}`` for anyone who wants to threshold;
- ids are the raw MovieLens ids as strings (``user_id="1"``, ``item_id="1"``);
- ``ts_ms`` is the rating's Unix time in milliseconds; ties are broken by user id, then
  movie id (numerically), so the order is the same on every load;
- ``event_id`` is ``ml:<userId>:<movieId>`` (``:2``, ``:3``… appended to a repeated pair);
- the catalog holds every row of movies.csv: ``title`` is "Title (Year)" as given,
  ``category`` the genres pipe-joined as given ("" for "(no genres listed)"), no price.

tags.csv and links.csv are not read. Note that about 11% of ml-latest-small's ratings are
older than 2000-01-01, which :func:`stream_rec.core.events.parse_event` rejects on the wire.
"""

from __future__ import annotations

import csv
from pathlib import Path

from stream_rec.core.events import CatalogItem, Event
from stream_rec.datasets.dataset import Dataset, column_index, find_file, open_text
from stream_rec.errors import DatasetError

__all__ = ["NAME", "load_movielens"]

NAME = "movielens"
_NO_GENRES = "(no genres listed)"


def load_movielens(data_dir: Path) -> Dataset:
    """Load ratings.csv and movies.csv from ``data_dir`` (plain or ``.gz``)."""
    catalog = _read_movies(find_file(data_dir, "movies.csv", NAME))
    events = _read_ratings(find_file(data_dir, "ratings.csv", NAME))
    return Dataset(name=NAME, catalog=catalog, events=events)


def _read_movies(path: Path) -> tuple[CatalogItem, ...]:
    items: dict[str, CatalogItem] = {}
    with open_text(path, NAME) as text:
        reader = csv.reader(text)
        cols = column_index(next(reader, []), ("movieId", "title", "genres"), path, NAME)
        for line_no, row in enumerate(reader, start=2):
            try:
                movie_id = str(int(row[cols["movieId"]]))
                title = " ".join(row[cols["title"]].split())
                genres = row[cols["genres"]].strip()
            except (IndexError, ValueError) as exc:
                raise DatasetError(f"{NAME}: {str(path)!r} line {line_no} is not "
                                   f"movieId,title,genres: {row!r}") from exc
            items[movie_id] = CatalogItem(item_id=movie_id, title=title,
                                          category="" if genres == _NO_GENRES else genres)
    return tuple(sorted(items.values(), key=lambda item: int(item.item_id)))


def _read_ratings(path: Path) -> tuple[Event, ...]:
    rows: list[tuple[int, int, int, float]] = []
    with open_text(path, NAME) as text:
        reader = csv.reader(text)
        cols = column_index(next(reader, []), ("userId", "movieId", "rating", "timestamp"),
                            path, NAME)
        u, m, r, t = cols["userId"], cols["movieId"], cols["rating"], cols["timestamp"]
        for line_no, row in enumerate(reader, start=2):
            try:
                rows.append((int(row[t]), int(row[u]), int(row[m]), float(row[r])))
            except (IndexError, ValueError) as exc:
                raise DatasetError(f"{NAME}: {str(path)!r} line {line_no} is not "
                                   f"userId,movieId,rating,timestamp: {row!r}") from exc
    rows.sort()
    seen: dict[tuple[int, int], int] = {}
    events: list[Event] = []
    for ts_s, user, movie, rating in rows:
        n = seen[(user, movie)] = seen.get((user, movie), 0) + 1
        events.append(Event(
            event_id=f"ml:{user}:{movie}" if n == 1 else f"ml:{user}:{movie}:{n}",
            type="purchase",
            user_id=str(user),
            item_id=str(movie),
            ts_ms=ts_s * 1000,
            context={"rating": rating},
        ))
    return tuple(events)
