"""Every relative link and anchor in README.md and docs/ points at something that exists.

Anchors follow GitHub's rule: the heading text lower-cased, punctuation other than '-' and '_'
dropped, spaces turned into '-'; a repeated heading gets '-1', '-2', ...
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^(```|~~~)")


def _prose(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines: list[str] = []
    fenced = False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def anchor_of(heading: str) -> str:
    text = re.sub(r"`|\*\*|\[|\]\([^)]*\)", "", heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    seen: dict[str, int] = {}
    found: set[str] = set()
    for line in _prose(path.read_text(encoding="utf-8")):
        match = re.match(r"^#{1,6} (.+)$", line)
        if not match:
            continue
        base = anchor_of(match.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    found: list[str] = []
    for line in _prose(path.read_text(encoding="utf-8")):
        # Inline code may show link syntax without being a link.
        line = re.sub(r"`[^`]*`", "", line)
        found.extend(_LINK.findall(line))
    return found


def test_anchor_rule() -> None:
    assert anchor_of("Storage (multipath iSCSI)") == "storage-multipath-iscsi"
    assert anchor_of("`kvmfleet cloudstack status [HOST...] [--json]`") == (
        "kvmfleet-cloudstack-status-host---json"
    )


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(document: Path) -> None:
    broken: list[str] = []
    for target in links(document):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        linked = (document.parent / file_part).resolve() if file_part else document
        if not linked.exists():
            broken.append(f"{target}: no such file")
            continue
        if fragment and linked.suffix == ".md" and fragment not in anchors(linked):
            broken.append(f"{target}: no heading with anchor #{fragment}")
    assert broken == []


def test_every_doc_is_reachable_from_readme() -> None:
    linked = {
        (ROOT / target.partition("#")[0]).resolve()
        for target in links(ROOT / "README.md")
        if target.startswith("docs/")
    }
    missing = [p.name for p in DOCUMENTS[1:] if p.resolve() not in linked]
    assert missing == []
