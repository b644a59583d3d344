"""Render a report Document as Markdown; plots are PNG files referenced relative to the report."""

from __future__ import annotations

from .document import Document, Note, Paragraph, Section, Table
from .plots import Plot


def escape(text: str) -> str:
    """Text safe inside a Markdown table cell or paragraph (no HTML, no column breaks)."""
    text = " ".join(text.split())
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")


def plot_path(plot: Plot, figure_dir: str) -> str:
    return f"{figure_dir}/{plot.key}.png"


def render_markdown(document: Document, figure_dir: str = "figures") -> str:
    lines = [f"# {escape(document.title)}", "", f"_{escape(document.subtitle)}_", ""]
    lines += [f"- [{escape(section.title)}](#{section.anchor})" for section in document.sections]
    lines.append("")
    for section in document.sections:
        lines += render_section(section, 2, figure_dir)
    return "\n".join(lines).rstrip() + "\n"


def render_section(section: Section, level: int, figure_dir: str) -> list[str]:
    lines = [f'<a id="{section.anchor}"></a>', "", f"{'#' * level} {escape(section.title)}", ""]
    for block in section.blocks:
        lines += render_block(block, figure_dir)
        lines.append("")
    for subsection in section.subsections:
        lines += render_section(subsection, min(level + 1, 6), figure_dir)
    return lines


def render_block(block: Paragraph | Note | Table | Plot, figure_dir: str) -> list[str]:
    if isinstance(block, Paragraph):
        return [escape(block.text)]
    if isinstance(block, Note):
        return [f"> **Note:** {escape(block.text)}"]
    if isinstance(block, Plot):
        return [f"![{escape(block.alt)}]({plot_path(block, figure_dir)})", f"*{escape(block.title)}*"]
    return render_table(block)


def render_table(table: Table) -> list[str]:
    if not table.rows:
        return ["_(no rows)_"]
    header = "| " + " | ".join(escape(column) for column in table.columns) + " |"
    rule = "|" + "|".join("---:" if i in table.numeric else "---" for i in range(len(table.columns))) + "|"
    body = ["| " + " | ".join(escape(cell) for cell in row) + " |" for row in table.rows]
    return [header, rule, *body]
