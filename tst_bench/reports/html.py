"""Render a report Document as one self-contained HTML file: inline CSS, plots as base64 PNG.

Nothing is fetched when the file is opened (no scripts, fonts or images from elsewhere), so it
can be mailed, archived as a CI artifact or opened offline.
"""

from __future__ import annotations

import base64
from html import escape

from .document import Document, Note, Paragraph, Section, Table
from .plots import Plot

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1180px;
       padding: 1.5rem; color: #1f2328; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; } .subtitle { color: #59636e; margin-top: 0; }
h2 { border-bottom: 2px solid #d0d7de; padding-bottom: 0.2rem; margin-top: 2.2rem; }
h3 { margin-top: 1.6rem; } h4 { margin-top: 1.2rem; }
nav ul { columns: 2; } nav a { text-decoration: none; }
table { border-collapse: collapse; margin: 0.6rem 0 1rem; font-size: 0.88rem; }
th, td { border: 1px solid #d0d7de; padding: 0.25rem 0.55rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; } td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fbfcfd; }
figure { margin: 0.6rem 0 1rem; } figure img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
figcaption { color: #59636e; font-size: 0.85rem; }
.note { background: #fff8c5; border-left: 4px solid #d4a72c; padding: 0.4rem 0.7rem; }
"""


def render_html(document: Document) -> str:
    toc = "".join(f'<li><a href="#{s.anchor}">{escape(s.title)}</a></li>' for s in document.sections)
    body = "".join(render_section(section, 2) for section in document.sections)
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(document.title)}</title><style>{STYLE}</style></head>\n<body>"
        f"<h1>{escape(document.title)}</h1><p class='subtitle'>{escape(document.subtitle)}</p>"
        f"<nav><ul>{toc}</ul></nav>\n{body}</body></html>\n"
    )


def render_section(section: Section, level: int) -> str:
    tag = f"h{min(level, 6)}"
    parts = [f'<section id="{escape(section.anchor)}"><{tag}>{escape(section.title)}</{tag}>']
    parts += [render_block(block) for block in section.blocks]
    parts += [render_section(subsection, level + 1) for subsection in section.subsections]
    parts.append("</section>\n")
    return "".join(parts)


def render_block(block: Paragraph | Note | Table | Plot) -> str:
    if isinstance(block, Paragraph):
        return f"<p>{escape(block.text)}</p>"
    if isinstance(block, Note):
        return f'<p class="note">{escape(block.text)}</p>'
    if isinstance(block, Plot):
        data = base64.b64encode(block.png).decode("ascii")
        return (
            f'<figure><img src="data:image/png;base64,{data}" alt="{escape(block.alt)}">'
            f"<figcaption>{escape(block.title)}</figcaption></figure>"
        )
    return render_table(block)


def render_table(table: Table) -> str:
    if not table.rows:
        return "<p><em>(no rows)</em></p>"

    def cell(tag: str, index: int, text: str) -> str:
        css = ' class="num"' if index in table.numeric else ""
        return f"<{tag}{css}>{escape(text)}</{tag}>"

    head = "".join(cell("th", i, column) for i, column in enumerate(table.columns))
    rows = "".join(
        "<tr>" + "".join(cell("td", i, text) for i, text in enumerate(row)) + "</tr>" for row in table.rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
