"""The design document as sections: a claim in unit.yaml names a section by its headings ("Deployment
Topology > Network Architecture") and quotes it, and the lint checks the quote is still there, so the spec
cannot drift from the document silently."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


class DocumentError(ValueError):
    """The design document cannot be read; the message names the file."""


@dataclass(frozen=True)
class Section:
    # Headings below the title, outermost first: ("Deployment Topology", "Network Architecture").
    path: tuple[str, ...]
    text: str

    @property
    def name(self) -> str:
        return " > ".join(self.path) if self.path else "(title)"


@dataclass(frozen=True)
class Document:
    path: Path
    sections: tuple[Section, ...]

    def section(self, name: str) -> Section | None:
        for section in self.sections:
            if section.name == name:
                return section
        return None

    def text_under(self, name: str) -> str | None:
        """The text of a section and of every section nested in it (a quote may sit in a subsection)."""
        wanted = tuple(part.strip() for part in name.split(">"))
        texts = [s.text for s in self.sections if s.path[: len(wanted)] == wanted]
        return "\n".join(texts) if texts else None


def parse_document(text: str, path: Path) -> Document:
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    lines: list[str] = []
    in_fence = False

    def flush() -> None:
        # Level 1 is the document's title: section names start below it.
        sections.append(Section(tuple(title for level, title in stack if level > 1), "\n".join(lines)))
        lines.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading is None:
            lines.append(line)
            continue
        flush()
        level = len(heading.group(1))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, heading.group(2)))
    flush()
    return Document(path, tuple(s for s in sections if s.text.strip() or s.path))


def read_document(path: Path) -> Document:
    try:
        return parse_document(path.read_text(encoding="utf-8"), path)
    except UnicodeDecodeError as exc:
        raise DocumentError(f"the design document {path} is not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    except OSError as exc:
        raise DocumentError(f"cannot read the design document {path}: {exc.strerror or exc}") from None
