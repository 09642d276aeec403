"""The children of an area as a bar chart in SVG, for an officer to open in a browser.

Horizontal bars leave room for long Thai names; the text stays text (not paths), so the
browser shapes Thai with its own fonts and a screen reader can read it.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

from services.analytics.schemas import Progress

FONT = "Sarabun, 'Noto Sans Thai', 'Leelawadee UI', Tahoma, sans-serif"
REACHED, GRADUATED = "#8fb8de", "#1f5f99"
LABEL_WIDTH, BAR_WIDTH, ROW, BAR = 220, 520, 34, 12
TOP, BOTTOM = 78, 24


def _percent(ratio: float | None) -> str:
    return "–" if ratio is None else f"{ratio * 100:.1f}%"


def _bar(x: float, y: float, ratio: float | None, colour: str, label: str) -> str:
    width = round(BAR_WIDTH * (ratio or 0.0), 1)
    return (
        f'<rect x="{x}" y="{y}" width="{width}" height="{BAR}" fill="{colour}">'
        f"<title>{escape(label)} {_percent(ratio)}</title></rect>"
        f'<text x="{x + width + 6}" y="{y + BAR - 2}" font-size="11" fill="#333">'
        f"{_percent(ratio)}</text>"
    )


def children_chart(area: Progress, children: list[Progress]) -> str:
    """Reached and graduated ratios of each child area, in the order given."""
    height = TOP + ROW * max(len(children), 1) + BOTTOM
    width = LABEL_WIDTH + BAR_WIDTH + 80
    title = f"ความก้าวหน้า {area.name_th}"
    subtitle = (
        f"ครัวเรือนเป้าหมาย {area.target_households:,} · เข้าถึง {_percent(area.reached_ratio)}"
        f" · พ้นจน {_percent(area.graduated_ratio)}"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family={quoteattr(FONT)} role="img" '
        f"aria-label={quoteattr(title)}>",
        f"<title>{escape(title)}</title>",
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
        f'<text x="16" y="26" font-size="18" font-weight="bold">{escape(title)}</text>',
        f'<text x="16" y="46" font-size="12" fill="#555">{escape(subtitle)}</text>',
        f'<rect x="{LABEL_WIDTH}" y="56" width="12" height="10" fill="{REACHED}"/>'
        f'<text x="{LABEL_WIDTH + 16}" y="65" font-size="11">เข้าถึง (reached)</text>'
        f'<rect x="{LABEL_WIDTH + 130}" y="56" width="12" height="10" fill="{GRADUATED}"/>'
        f'<text x="{LABEL_WIDTH + 146}" y="65" font-size="11">พ้นจน (graduated)</text>',
    ]
    if not children:
        parts.append(f'<text x="16" y="{TOP + 16}" font-size="13">ไม่มีพื้นที่ย่อย</text>')
    for n, child in enumerate(children):
        y = TOP + n * ROW
        name = child.name_th
        parts.append(
            f'<text x="{LABEL_WIDTH - 8}" y="{y + BAR + 4}" font-size="13" text-anchor="end">'
            f"{escape(name)}</text>"
            + _bar(LABEL_WIDTH, y, child.reached_ratio, REACHED, f"{name} เข้าถึง")
            + _bar(LABEL_WIDTH, y + BAR + 2, child.graduated_ratio, GRADUATED, f"{name} พ้นจน")
        )
    parts.append("</svg>")
    return "\n".join(parts)
