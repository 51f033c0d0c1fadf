"""The styles both web faces share: one stylesheet, and Pygments' colours for code in notes."""

from __future__ import annotations

import os
import re

from ..paths import site_dir


def stylesheet() -> str:
    """site/assets/site.css (every page's look, the entry article's included) with the code colours."""
    with open(os.path.join(site_dir(), "assets", "site.css"), encoding="utf-8") as f:
        return f.read() + "\n" + pygments_css()


def pygments_css() -> str:
    """Pygments token colours for code in notes: a light style, and a dark one under the media query."""
    from pygments.formatters import HtmlFormatter

    def defs(style: str) -> str:
        lines = HtmlFormatter(style=style).get_style_defs(".highlight").splitlines()
        # our stylesheet owns the block's background and line-number colours; the token-name
        # comments only add weight to every page
        return "\n".join(re.sub(r"\s*/\*.*?\*/", "", line) for line in lines
                         if not line.startswith((".highlight {", "pre {", "td.", "span.")))

    dark = "\n".join("  " + line for line in defs("github-dark").splitlines())
    return f"/* Pygments: default (light) and github-dark */\n{defs('default')}\n" \
           f"@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n"
