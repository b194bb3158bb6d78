"""A report written once as blocks and rendered twice: Markdown, and one self-contained HTML file.

Tables are pandas frames whose cells are escaped for each format: a '|' or a
line break in an answer must not break a Markdown table.
"""

import base64
import html
import re
from pathlib import Path


class Document:
    """Blocks rendered twice: Markdown and self-contained HTML."""

    def __init__(self):
        self.blocks = []

    def heading(self, level: int, text: str):
        self.blocks.append(("heading", level, text))

    def paragraph(self, text: str):
        if text:
            self.blocks.append(("paragraph", text))

    def bullets(self, items):
        items = [i for i in items if i]
        if items:
            self.blocks.append(("bullets", items))

    def table(self, frame, note: str = ""):
        if frame is not None and len(frame):
            self.blocks.append(("table", frame, note))

    def image(self, path, alt: str):
        self.blocks.append(("image", Path(path), alt))

    def code(self, text: str):
        self.blocks.append(("code", text))

    def markdown(self) -> str:
        out = []
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                out += ["#" * block[1] + " " + block[2], ""]
            elif kind == "paragraph":
                out += [block[1], ""]
            elif kind == "bullets":
                out += [f"- {item}" for item in block[1]] + [""]
            elif kind == "table":
                out += [markdown_table(block[1]), ""] + ([block[2], ""] if block[2] else [])
            elif kind == "image":
                out += [f"![{block[2]}]({block[1].name})", ""]
            elif kind == "code":
                out += ["```json", block[1], "```", ""]
        return "\n".join(out)

    def html(self) -> str:
        parts = [
            "<!doctype html><html><head><meta charset='utf-8'><title>lmsweep report</title>",
            "<style>body{font-family:sans-serif;max-width:1250px;margin:2em auto;line-height:1.4}"
            "table{border-collapse:collapse;margin:.6em 0 1.2em}td,th{border:1px solid #ccc;padding:3px 8px}"
            "td{text-align:right}th{background:#f3f3f3}td:first-child{text-align:left}"
            "img{max-width:100%}pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:85%}"
            "code{background:#f3f3f3;padding:0 3px}.note{color:#555;font-size:90%}</style></head><body>",
        ]
        for block in self.blocks:
            kind = block[0]
            if kind == "heading":
                parts.append(f"<h{block[1]}>{inline(block[2])}</h{block[1]}>")
            elif kind == "paragraph":
                parts.append(f"<p>{inline(block[1])}</p>")
            elif kind == "bullets":
                parts.append("<ul>" + "".join(f"<li>{inline(i)}</li>" for i in block[1]) + "</ul>")
            elif kind == "table":
                parts.append(block[1].to_html(index=False, escape=True, border=0, na_rep=""))
                if block[2]:
                    parts.append(f"<p class='note'>{inline(block[2])}</p>")
            elif kind == "image":
                data = base64.b64encode(block[1].read_bytes()).decode()
                parts.append(f'<img alt="{html.escape(block[2])}" src="data:image/png;base64,{data}">')
            elif kind == "code":
                parts.append(f"<pre>{html.escape(block[1])}</pre>")
        parts.append("</body></html>")
        return "\n".join(parts)


def markdown_cell(value) -> str:
    """A table cell as Markdown reads it: '|' escaped, line breaks as spaces (an answer may hold both)."""
    if not isinstance(value, str):
        return value
    return value.replace("\\", "\\\\").replace("|", "\\|").replace("\r\n", " ").replace("\n", " ").replace("\r", " ")


def markdown_table(frame) -> str:
    """`frame` as a Markdown table whose cells cannot break it."""
    return frame.map(markdown_cell).rename(columns=markdown_cell).to_markdown(index=False)


def inline(text: str) -> str:
    """The Markdown this report uses inline (**bold**, `code`) as HTML, everything else escaped."""
    escaped = html.escape(text)
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)
