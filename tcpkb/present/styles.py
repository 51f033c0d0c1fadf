"""The styles both web faces share: one stylesheet, and Pygments' colours for code in notes."""

from __future__ import annotations

import os
import re

from ..paths import site_dir


def stylesheet() -> str:
    """site/assets/site.css (every page's look, the entry article's included) with the code colours."""
    with open(os.path.join(site_dir(), "assets", "site.css"), encoding="utf-8") as f:
        return f.read() + "\n" + pygments_css()


CODE_BACKGROUND = {"default": "#eef1f4", "github-dark": "#22272e"}  # site.css's --code, light and dark
MIN_CONTRAST = 4.5  # WCAG AA for text of the size code is shown at


def pygments_css() -> str:
    """Pygments token colours for code in notes: a light style, and a dark one under the media query.
    A colour too faint on our code background (the default style's comments: 4.3:1) is moved
    towards the text colour until it reads at 4.5:1."""
    from pygments.formatters import HtmlFormatter

    def defs(style: str) -> str:
        lines = HtmlFormatter(style=style).get_style_defs(".highlight").splitlines()
        # our stylesheet owns the block's background and line-number colours; the token-name
        # comments only add weight to every page
        background = CODE_BACKGROUND[style]
        return "\n".join(re.sub(r"color: (#[0-9A-Fa-f]{3,6})\b",
                                lambda m: "color: " + legible(m.group(1), background),
                                re.sub(r"\s*/\*.*?\*/", "", line))
                         for line in lines if not line.startswith((".highlight {", "pre {", "td.", "span.")))

    dark = "\n".join("  " + line for line in defs("github-dark").splitlines())
    return f"/* Pygments: default (light) and github-dark */\n{defs('default')}\n" \
           f"@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"


def _rgb(colour: str) -> tuple[int, int, int]:
    h = colour.lstrip("#")
    h = "".join(c * 2 for c in h) if len(h) == 3 else h
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def contrast(a: str, b: str) -> float:
    """WCAG 2 contrast ratio between two #rgb or #rrggbb colours."""
    def luminance(colour):
        channels = [c / 255 for c in _rgb(colour)]
        lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def legible(colour: str, background: str) -> str:
    """`colour`, or the nearest shade of it (towards black on a light background, white on a
    dark one) that reaches MIN_CONTRAST against `background`."""
    if contrast(colour, background) >= MIN_CONTRAST:
        return colour
    target = 0 if sum(_rgb(background)) > 3 * 128 else 255
    r, g, b = _rgb(colour)
    for step in range(1, 21):
        mix = [round(c + (target - c) * step / 20) for c in (r, g, b)]
        shade = "#%02x%02x%02x" % tuple(mix)
        if contrast(shade, background) >= MIN_CONTRAST:
            return shade
    return "#000000" if target == 0 else "#ffffff"
