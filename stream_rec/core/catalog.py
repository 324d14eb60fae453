"""The catalog every worker keeps in memory: item id → title, category, price, stock."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from stream_rec.core.events import CatalogItem

__all__ = ["Catalog"]


class Catalog:
    """Latest version of each catalog item, by id (folded from the compacted catalog topic)."""

    def __init__(self, items: Iterable[CatalogItem] = ()) -> None:
        self._items: dict[str, CatalogItem] = {}
        self.categories: dict[str, str] = {}  # item id -> category, read per candidate
        self.version = 0
        for item in items:
            self.upsert(item)

    def upsert(self, item: CatalogItem) -> bool:
        """Insert or replace; returns True when the title or category changed (re-embed)."""
        old = self._items.get(item.item_id)
        self._items[item.item_id] = item
        self.categories[item.item_id] = item.category
        self.version += 1
        return old is None or (old.title, old.category) != (item.title, item.category)

    def get(self, item_id: str) -> CatalogItem | None:
        return self._items.get(item_id)

    def title(self, item_id: str) -> str:
        item = self._items.get(item_id)
        return item.title if item is not None else item_id

    def category(self, item_id: str) -> str:
        return self.categories.get(item_id, "")

    def recommendable(self, item_id: str) -> bool:
        item = self._items.get(item_id)
        return item is not None and item.in_stock

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[CatalogItem]:
        return iter(self._items.values())
