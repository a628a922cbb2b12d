"""Bar charts as inline SVG, rendered on the server: readable without JavaScript and
printable. Hand-written (about forty lines) because a plotting library would bring
matplotlib's weight for two bar charts."""

from __future__ import annotations

from html import escape


def bar_chart(title: str, bars: list[tuple[str, int]], width: int = 640, bar_height: int = 22) -> str:
    label_width, value_width, gap = 190, 60, 6
    top = 30
    height = top + len(bars) * (bar_height + gap) + 10
    scale = max((v for _, v in bars), default=0) or 1
    span = width - label_width - value_width
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(title)}"'
        f' width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        f'<title>{escape(title)}</title>',
        f'<text x="0" y="18" font-weight="bold">{escape(title)}</text>',
    ]
    for index, (label, value) in enumerate(bars):
        y = top + index * (bar_height + gap)
        length = round(span * value / scale)
        parts += [
            f'<text x="{label_width - 8}" y="{y + bar_height - 6}" text-anchor="end">{escape(label)}</text>',
            f'<rect x="{label_width}" y="{y}" width="{length}" height="{bar_height}" fill="#3b6ea5"/>',
            f'<text x="{label_width + length + 6}" y="{y + bar_height - 6}">{value:,}</text>'.replace(",", "\u202f"),
        ]
    parts.append("</svg>")
    return "\n".join(parts)
