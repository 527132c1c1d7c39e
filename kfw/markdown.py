"""Markdown to one self-contained HTML page, for the subset kfw's reports emit.

Headings, paragraphs, pipe tables (numbers right-aligned), fenced code, lists, images
(embedded as data URIs; an image that is not given becomes its alt text, never a fetch),
`code`, **bold** and *emphasis*. Every piece of text is escaped.
"""

from __future__ import annotations

import base64
import html
import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

# ---------------------------------------------------------------------------------------------
# markdown -> self-contained HTML, for the subset the write-up emits

_CSS = """
body{font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
color:#1f2328;max-width:62rem;margin:2rem auto;padding:0 1.2rem}
h1,h2,h3{line-height:1.25}h2{border-bottom:1px solid #d0d7de;padding-bottom:.3em;margin-top:2em}
table{border-collapse:collapse;margin:.8em 0;display:block;overflow-x:auto;max-width:100%}
th,td{border:1px solid #d0d7de;padding:.3em .7em;vertical-align:top}th{background:#f6f8fa}
tr:nth-child(even) td{background:#fafbfc}.r{text-align:right;font-variant-numeric:tabular-nums;
white-space:nowrap}td code{white-space:nowrap}
code{font:85% ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#eff1f3;
padding:.1em .3em;border-radius:4px}pre{background:#f6f8fa;padding:1em;overflow-x:auto;
border-radius:6px}pre code{background:none;padding:0}figure{margin:1em 0}
img{max-width:100%;height:auto}figcaption{color:#59636e;font-size:.9em}
""".strip()

_BLOCK = re.compile(r"```|#{1,6} |\||[-*] |!\[")


def _inline(text: str) -> str:
    """Escape text; render `code`, **bold** and *emphasis* (inside code nothing is rendered)."""
    out = []
    for i, part in enumerate(re.split(r"`([^`]+)`", text)):
        part = part.replace("\\|", "|")  # a pipe escaped for a table cell
        if i % 2:
            out.append(f"<code>{html.escape(part)}</code>")
            continue
        part = html.escape(part)
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        out.append(re.sub(r"(?<![\w*])\*(\S[^*]*?)\*(?![\w*])", r"<em>\1</em>", part))
    return "".join(out)


def _table_html(rows: list[str]) -> str:
    def cells(line: str) -> list[str]:
        return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]

    head, body = cells(rows[0]), [cells(r) for r in rows[2:]]
    right = [c.endswith(":") for c in cells(rows[1])] if len(rows) > 1 else []

    def row(values: list[str], tag: str) -> str:
        return (
            "<tr>"
            + "".join(
                f"<{tag}{' class=r' if j < len(right) and right[j] else ''}>{_inline(v)}</{tag}>"
                for j, v in enumerate(values)
            )
            + "</tr>"
        )

    return (
        f"<table><thead>{row(head, 'th')}</thead><tbody>"
        + "".join(row(r, "td") for r in body)
        + "</tbody></table>"
    )


def markdown_to_html(text: str, images: dict[str, bytes] | None = None) -> str:
    """Convert the markdown subset kfw emits to HTML, images inlined as data URIs.

    Handles headings, paragraphs, pipe tables, fenced code blocks, images on a line of their
    own, and ``-`` lists (continuation lines indented). Every piece of text is escaped. An
    image not in ``images`` is reduced to its alt text, so the page never loads anything.
    """
    images = images or {}
    lines, out, i = text.split("\n"), [], 0
    slug: Callable[[str], str] = lambda s: re.sub(r"[^a-z0-9]+", "-", s.lower()).strip("-")  # noqa: E731
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append(f"<pre><code>{html.escape(chr(10).join(lines[i + 1 : j]))}</code></pre>")
            i = j + 1
        elif m := re.match(r"(#{1,6}) (.*)", line):
            n, title = len(m.group(1)), m.group(2).strip()
            out.append(f'<h{n} id="{slug(title)}">{_inline(title)}</h{n}>')
            i += 1
        elif m := re.fullmatch(r"!\[([^\]]*)\]\(([^)\s]+)\)", line.strip()):
            alt, src = m.groups()
            if src in images:
                data = base64.b64encode(images[src]).decode()
                out.append(
                    f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">'
                    f"<figcaption>{_inline(alt)}</figcaption></figure>"
                )
            else:
                out.append(f"<p>[{_inline(alt)}]</p>")
            i += 1
        elif line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_table_html(lines[i:j]))
            i = j
        elif re.match(r"[-*] ", line):
            items: list[str] = []
            while i < len(lines):
                if re.match(r"[-*] ", lines[i]):
                    items.append(lines[i][2:].strip())
                elif lines[i].startswith(" ") and lines[i].strip() and items:
                    items[-1] += " " + lines[i].strip()
                elif (
                    not lines[i].strip() and i + 1 < len(lines) and re.match(r"[-*] ", lines[i + 1])
                ):
                    pass  # a blank line between two items keeps the list open
                else:
                    break
                i += 1
            out.append("<ul>" + "".join(f"<li>{_inline(t)}</li>" for t in items) + "</ul>")
        else:
            j = i
            while j < len(lines) and lines[j].strip() and (j == i or not _BLOCK.match(lines[j])):
                j += 1
            out.append(f"<p>{_inline(' '.join(s.strip() for s in lines[i:j]))}</p>")
            i = j
    return "\n".join(out)


def _contents(body: str) -> str:
    """``body`` with a list of links to its sections (``<h2>``) after the title, when it has
    three or more: a long report is read by jumping to a section."""
    sections = re.findall(r'<h2 id="([^"]+)">(.*?)</h2>', body)
    if len(sections) < 3:
        return body
    nav = (
        '<nav class="contents"><ul>'
        + "".join(f'<li><a href="#{anchor}">{text}</a></li>' for anchor, text in sections)
        + "</ul></nav>"
    )
    end = body.find("</h1>")
    at = end + len("</h1>") if end >= 0 else 0
    return body[:at] + "\n" + nav + body[at:]


def to_html(markdown: str, images: dict[str, bytes], title: str) -> str:
    """A complete, self-contained page: inline CSS, images as data URIs, nothing fetched,
    and links to its sections under the title."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        # the page may load nothing: only its own inline style and data: images
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">\n"
        '<meta name="generator" content="kfw writeup">\n'
        f"<title>{html.escape(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n"
        f"{_contents(markdown_to_html(markdown, images))}\n</body>\n</html>\n"
    )


def render(template: Path, **values: object) -> str:
    """Fill a Markdown template: ``$name`` / ``${name}`` become ``values[name]``.

    The prose of every generated report lives in such templates beside the code that computes
    the numbers; a placeholder without a value raises ``KeyError`` (a template and its code
    out of step fail loudly), and ``$$`` writes a dollar sign.
    """
    return string.Template(Path(template).read_text(encoding="utf-8")).substitute(
        {k: str(v) for k, v in values.items()}
    )
