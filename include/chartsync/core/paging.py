"""One shape for every paged list (API, pages, CLI): the items of one page and the total."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """Which slice of a list: ``limit`` items from ``offset``."""

    limit: int = 50
    offset: int = 0

    @classmethod
    def number(cls, page: int, page_size: int) -> PageRequest:
        """Page ``page`` (1-based; below 1 means 1) of ``page_size`` items."""
        return cls(page_size, (max(1, page) - 1) * page_size)

    @property
    def page(self) -> int:
        return self.offset // self.limit + 1


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    limit: int = 50
    offset: int = 0

    @property
    def page(self) -> int:
        return self.offset // self.limit + 1

    @property
    def page_size(self) -> int:
        return self.limit

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.limit))
