"""Where the benchmarks write their results: one ``## Title`` section each in
``docs/benchmarks.md``, replaced on every run, the rest of the file left alone."""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
_PREAMBLE = (
    "# Benchmarks\n\nHow fast Mainstem is on the machine that ran the benchmark, always next to "
    "ceilings measured in the same run (DESIGN §8). Run them with `make bench`.\n\n"
)


def write_section(title: str, section: str, path: Path = DOCS) -> None:
    """Replace the ``## {title}`` section of ``path`` with ``section`` (which starts with that
    heading), or append it; create the file if needed."""
    assert section.startswith(f"## {title}\n"), "a section starts with its own heading"
    text = path.read_text(encoding="utf-8") if path.exists() else _PREAMBLE
    section = section.rstrip("\n") + "\n\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.MULTILINE | re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip("\n") + "\n", encoding="utf-8")
