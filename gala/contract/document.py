"""A report as a list of blocks (headings, paragraphs, lists, tables, charts), rendered twice: Markdown
(charts as PNG files under `charts/`) and a self-contained HTML page (charts embedded as base64 PNG, no
external link, so the file can be mailed or attached to a ticket). Shared by every part that writes
a report for people (the capacity plan, the run comparison). Pure: strings in, strings out.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass

import pandas as pd


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Para:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    frame: pd.DataFrame
    index: bool = False


@dataclass
class Chart:
    name: str
    caption: str
    png: bytes


Block = Heading | Para | Bullets | Table | Chart


def num(x, digits: int = 3) -> str:
    """A number for people: thousands separated, no exponent above 1e-3, `digits` significant figures."""
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    if isinstance(x, int) or abs(x) >= 10 ** (digits - 1) or float(x).is_integer():
        return f"{round(x):,}"
    if x == 0 or abs(x) < 1e-3:
        return f"{x:.{digits}g}"
    return f"{x:.{digits}g}" if abs(x) < 1 else f"{x:,.{max(digits - 1 - int(math.log10(abs(x))), 0)}f}"


def pct(x) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.0%}"


def ms(x) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:,.0f} ms"


def _md_cell(x) -> str:
    text = num(x) if isinstance(x, (int, float)) and not isinstance(x, bool) else str(x)
    return text.replace("|", "\\|").replace("\n", " ")


def _md_table(t: Table) -> str:
    frame = t.frame.reset_index() if t.index else t.frame
    if t.index and frame.columns[0] in ("index", None):
        frame = frame.rename(columns={frame.columns[0]: ""})
    head = "| " + " | ".join(map(_md_cell, frame.columns)) + " |"
    rule = "|" + "---|" * len(frame.columns)
    rows = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def render_markdown(blocks: list[Block]) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {i}" for i in b.items))
        elif isinstance(b, Table):
            out.append(_md_table(b))
        elif isinstance(b, Chart):
            out.append(f"![{b.caption}](charts/{b.name}.png)")
    return "\n\n".join(out) + "\n"


_CSS = """body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:right}
th{background:#f4f6f7}td:first-child,th:first-child{text-align:left}img{max-width:100%}
figure{margin:1rem 0}figcaption{color:#555;font-size:.9rem}"""


def _html_table(t: Table) -> str:
    frame = t.frame.reset_index() if t.index else t.frame
    head = "".join(f"<th>{html.escape(_md_cell(c) if c != 'index' else '')}</th>" for c in frame.columns)
    rows = "".join("<tr>" + "".join(f"<td>{html.escape(_md_cell(v))}</td>" for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def render_html(blocks: list[Block], title: str) -> str:
    out = []
    for b in blocks:
        if isinstance(b, Heading):
            out.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            out.append(f"<p>{html.escape(b.text)}</p>")
        elif isinstance(b, Bullets):
            out.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            out.append(_html_table(b))
        elif isinstance(b, Chart):
            data = base64.b64encode(b.png).decode("ascii")
            out.append(f'<figure><img alt="{html.escape(b.caption)}" src="data:image/png;base64,{data}">'
                       f"<figcaption>{html.escape(b.caption)}</figcaption></figure>")
    body = "\n".join(out)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
            f"<style>{_CSS}</style></head>\n<body>\n{body}\n</body></html>\n")
