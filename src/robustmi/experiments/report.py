"""A tiny document model that writes the same report as Markdown and as self-contained HTML.

Experiments build a :class:`Report` from headings, paragraphs, tables and images, then ``write`` it;
nothing here knows about robustness or MI.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value); NaNs are ignored."""
    clean = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not clean:
        return math.nan, math.nan
    mean = sum(clean) / len(clean)
    if len(clean) == 1:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in clean) / (len(clean) - 1)
    return mean, math.sqrt(var)


def fmt_mean_std(mean: float, std: float, digits: int = 2) -> str:
    """``"12.34 ± 0.56"``, or ``"–"`` when the mean is missing."""
    if mean is None or math.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


@dataclass
class Report:
    """An ordered list of blocks rendered to ``report.md`` and ``report.html``."""

    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> Report:
        self.blocks.append(("heading", (level, text)))
        return self

    def text(self, paragraph: str) -> Report:
        self.blocks.append(("text", paragraph))
        return self

    def bullets(self, items: Sequence[str]) -> Report:
        self.blocks.append(("bullets", list(items)))
        return self

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> Report:
        self.blocks.append(("table", ([str(h) for h in header], [[str(c) for c in r] for r in rows])))
        return self

    def image(self, path: str, caption: str) -> Report:
        """``path`` is relative to the report folder."""
        self.blocks.append(("image", (path, caption)))
        return self

    def to_markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value  # type: ignore[misc]
                out += ["#" * level + " " + text, ""]
            elif kind == "text":
                out += [str(value), ""]
            elif kind == "bullets":
                out += [f"- {item}" for item in value] + [""]  # type: ignore[union-attr]
            elif kind == "table":
                header, rows = value  # type: ignore[misc]
                out.append("| " + " | ".join(header) + " |")
                out.append("|" + "|".join("---" for _ in header) + "|")
                out += ["| " + " | ".join(r) + " |" for r in rows]
                out.append("")
            elif kind == "image":
                path, caption = value  # type: ignore[misc]
                out += [f"![{caption}]({path})", "", f"*{caption}*", ""]
        return "\n".join(out)

    def to_html(self) -> str:
        esc = html.escape
        body = [f"<h1>{esc(self.title)}</h1>"]
        for kind, value in self.blocks:
            if kind == "heading":
                level, text = value  # type: ignore[misc]
                body.append(f"<h{level}>{esc(text)}</h{level}>")
            elif kind == "text":
                body.append(f"<p>{esc(str(value))}</p>")
            elif kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in value) + "</ul>")  # type: ignore[union-attr]
            elif kind == "table":
                header, rows = value  # type: ignore[misc]
                head = "".join(f"<th>{esc(h)}</th>" for h in header)
                trs = "".join("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in r) + "</tr>" for r in rows)
                body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{trs}</tbody></table>")
            elif kind == "image":
                path, caption = value  # type: ignore[misc]
                body.append(
                    f'<figure><img src="{esc(path)}" alt="{esc(caption)}">'
                    f"<figcaption>{esc(caption)}</figcaption></figure>"
                )
        style = (
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.45}"
            "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #bbb;padding:4px 8px;"
            "text-align:right}th{background:#eee}img{max-width:100%}figcaption{color:#555}"
        )
        return (
            f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(self.title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n"
        )

    def write(self, out_dir: str | Path) -> tuple[Path, Path]:
        """Write ``report.md`` and ``report.html`` into ``out_dir``; return both paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        md, page = out / "report.md", out / "report.html"
        md.write_text(self.to_markdown(), encoding="utf-8")
        page.write_text(self.to_html(), encoding="utf-8")
        return md, page
