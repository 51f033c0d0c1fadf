"""kb/ -> records: read note files into `Note` objects.

The only module that reads kb/. Front matter is found by markdown-it-py's
front_matter plugin and parsed with PyYAML's node API so every field keeps
the line it was written on; `## ` headings split the body into sections.
Problems that stop parsing altogether raise `NoteError`; everything else is
the linter's business.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml
from markdown_it import MarkdownIt
from mdit_py_plugins.front_matter import front_matter_plugin

from .paths import note_names

try:  # the C loader is several times faster on 200 notes
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover
    from yaml import SafeLoader as _Loader


class NoteError(Exception):
    def __init__(self, path: Path, line: int, code: str, message: str):
        super().__init__(f"{path}:{line}: {code} {message}")
        self.path, self.line, self.code, self.message = path, line, code, message


@dataclass
class Section:
    title: str
    line: int
    markdown: str


@dataclass
class Note:
    path: Path
    kind: str  # the directory the note sits in
    stem: str  # the file name without .md
    meta: dict
    lines: dict[str, int]  # front matter key -> line number in the file
    sections: list[Section] = field(default_factory=list)
    preamble_line: int | None = None  # a line of body text before the first section
    body: str = ""
    front_matter_line: int = 1
    # markdown-it's tokens of the whole file: the build renders the body and each section from
    # them instead of parsing the text again (a third of the first-use build's CPU)
    tokens: list = field(default_factory=list, repr=False)

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.meta.get('name', self.stem)}"

    def line_of(self, key: str) -> int:
        return self.lines.get(key, self.front_matter_line)


def markdown() -> MarkdownIt:
    """The one markdown configuration: CommonMark with tables, no raw HTML, and fenced code
    with a language highlighted by Pygments, so both web faces show the same HTML."""
    return (MarkdownIt("commonmark", {"html": False, "highlight": highlight})
            .enable("table").use(front_matter_plugin))


def highlight(code: str, lang: str, attrs: str) -> str:
    """A fenced block as <pre class="highlight"> with Pygments' token classes; "" (markdown-it's
    plain rendering) for a block with no language or one Pygments does not know."""
    if not lang:
        return ""
    from html import escape

    from pygments import highlight as render

    lexer = _lexer(lang)
    if lexer is None:
        return ""
    spans = render(code, lexer, _formatter())
    return f'<pre class="highlight"><code class="language-{escape(lang, quote=True)}">{spans}</code></pre>\n'


@lru_cache(maxsize=1)
def _formatter():
    """One HTML formatter for every block: making one builds its whole stylesheet."""
    from pygments.formatters import HtmlFormatter

    return HtmlFormatter(nowrap=True)


@lru_cache(maxsize=64)
def _lexer(lang: str):
    """Pygments' lexer for a language, or None; looked up once per language (a lookup walks
    every lexer Pygments knows)."""
    from pygments.lexers import get_lexer_by_name
    from pygments.util import ClassNotFound

    try:
        return get_lexer_by_name(lang)
    except ClassNotFound:
        return None


def parse(path: Path, md: MarkdownIt | None = None) -> Note:
    md = md or markdown()
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        line = path.read_bytes()[: e.start].count(b"\n") + 1
        raise NoteError(path, line, "KB001", f"not valid UTF-8 ({e.reason})") from None
    except OSError as e:
        raise NoteError(path, 1, "KB001", f"cannot read: {e.strerror}") from None

    tokens = md.parse(text)
    if not tokens or tokens[0].type != "front_matter":
        raise NoteError(path, 1, "KB002", "no front matter: a note starts with a line `---`")
    fm = tokens[0]
    meta, lines = _parse_yaml(path, fm.content, first_line=2)
    note = Note(path=path, kind=path.parent.name, stem=path.stem, meta=meta, lines=lines, tokens=tokens)

    source = text.splitlines()
    body_start = fm.map[1]  # 0-based index of the first line after the closing ---
    note.body = "\n".join(source[body_start:]).strip() + "\n"
    headings = [(t.map[0], tokens[i + 1].content.strip())
                for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"]
    first = headings[0][0] if headings else len(source)
    for n in range(body_start, first):
        if source[n].strip():
            note.preamble_line = n + 1
            break
    for i, (start, title) in enumerate(headings):
        end = headings[i + 1][0] if i + 1 < len(headings) else len(source)
        body = "\n".join(source[start + 1 : end]).strip()
        note.sections.append(Section(title=title, line=start + 1, markdown=body))
    return note


def _parse_yaml(path: Path, content: str, first_line: int) -> tuple[dict, dict[str, int]]:
    loader = _Loader(content)
    try:  # one pass: the node keeps the lines, and the data is constructed from that same node
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = first_line + (mark.line if mark else 0)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise NoteError(path, line, "KB002", f"front matter is not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise NoteError(path, first_line, "KB002", "front matter must be a mapping of field: value")
    lines = {}
    for key_node, _ in node.value:
        lines.setdefault(str(key_node.value), first_line + key_node.start_mark.line)
    return data, lines


def load(kb: Path) -> tuple[list[Note], list[NoteError]]:
    """Parse every note; return the notes that parsed and the errors of those that did not."""
    md = markdown()
    notes, errors = [], []
    for path in (kb / rel for rel in note_names(kb)):
        try:
            notes.append(parse(path, md))
        except NoteError as e:
            errors.append(e)
    return notes, errors
