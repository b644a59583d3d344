"""The report as a format-neutral document: sections of paragraphs, notes, tables and plots.

`content` builds it once; `markdown` and `html` render the same document, so both formats always
say the same thing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .plots import Plot


@dataclass
class Paragraph:
    text: str


@dataclass
class Note:
    """Why a section has no data, or a caveat about the data shown."""

    text: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    #: indices of columns holding numbers (right-aligned)
    numeric: tuple[int, ...] = ()


Block = Paragraph | Note | Table | Plot


@dataclass
class Section:
    title: str
    anchor: str
    blocks: list[Block] = field(default_factory=list)
    subsections: list[Section] = field(default_factory=list)

    def add(self, *blocks: Block | None) -> Section:
        self.blocks.extend(block for block in blocks if block is not None)
        return self

    def plots(self) -> list[Plot]:
        own = [block for block in self.blocks if isinstance(block, Plot)]
        return own + [plot for section in self.subsections for plot in section.plots()]


@dataclass
class Document:
    title: str
    subtitle: str
    sections: list[Section]

    def plots(self) -> list[Plot]:
        return [plot for section in self.sections for plot in section.plots()]


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60] or "section"
