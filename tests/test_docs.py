"""The documentation holds together: every relative link and anchor in README.md, docs/*.md and
benchmarks/README.md leads to a file of the repository and a heading of that page, and the README's quick-start
study files load as they are printed.

Links are checked offline: a web link (``https:``, ``mailto:``, ...) is not followed. Anchors are GitHub's: a
heading's text, lower-cased, punctuation dropped (``-`` and ``_`` kept), spaces made ``-``, and ``-1``, ``-2``
... for a heading text seen before on the page."""

from __future__ import annotations

import re
import textwrap
from functools import cache
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
CODE_SPAN = re.compile(r"(`+)[^`\n].*?\1")
# [text](target) and ![alt](target), the text possibly over several lines; an optional "title" after the target
LINK = re.compile(
    r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(\s*<?([^()\s<>]+(?:\([^()\s]*\))?)>?(?:\s+\"[^\"]*\")?\s*\)"
)
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def prose(text: str, spans: bool = True) -> str:
    """``text`` with fenced code blocks (and code spans, unless ``spans`` is false) blanked out: same length,
    same line numbers."""
    lines, fence = [], None
    for line in text.split("\n"):
        opened = FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)[0] * 3
            lines.append("")
        elif fence is not None:
            if line.strip().startswith(fence):
                fence = None
            lines.append("")
        else:
            lines.append(CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line) if spans else line)
    return "\n".join(lines)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


@cache
def anchors(page: Path) -> frozenset[str]:
    """The anchors a page has: one per heading outside code blocks, and ``<a name/id="...">`` tags."""
    text = page.read_text(encoding="utf-8")
    found, seen = set(), {}
    for line in prose(text, spans=False).split("\n"):  # a heading's code spans are part of its anchor
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            found.add(f"{base}-{seen[base]}" if base in seen else base)
            seen[base] = seen.get(base, 0) + 1
    found.update(HTML_ANCHOR.findall(text))
    return frozenset(found)


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    """One line per link of ``page`` that leads nowhere: ``page:line: target: why``."""
    text = prose(page.read_text(encoding="utf-8"))
    targets = [(m.start(), m.group(1)) for m in LINK.finditer(text)]
    targets += [(m.start(), m.group(1)) for m in REFERENCE.finditer(text)]
    problems = []
    for offset, target in sorted(targets):
        if SCHEME.match(target):
            continue  # a web link: not followed
        where = f"{page.relative_to(root)}:{text.count(chr(10), 0, offset) + 1}: ({target})"
        path, _, anchor = target.partition("#")
        dest = (page.parent / unquote(path)).resolve() if path else page
        if not dest.is_relative_to(root.resolve()):
            problems.append(f"{where}: leads outside the repository")
        elif not dest.exists():
            problems.append(f"{where}: no file {dest.relative_to(root.resolve())}")
        elif anchor and dest.suffix == ".md" and unquote(anchor) not in anchors(dest):
            problems.append(f"{where}: no heading #{anchor} in {dest.relative_to(root.resolve())}")
    return problems


@pytest.mark.parametrize("page", PAGES, ids=[str(p.relative_to(ROOT)) for p in PAGES])
def test_every_relative_link_and_anchor_resolves(page):
    problems = broken_links(page)
    assert not problems, "links that lead nowhere:\n" + "\n".join(problems)


def test_the_link_check_names_each_broken_link(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "other.md").write_text(
        "# Other page\n\n## A section: `code`, twice\n\n## A section: `code`, twice\n"
    )
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        textwrap.dedent("""\
        # Page

        ## Its own heading

        Fine: [other](../other.md), [a section](../other.md#a-section-code-twice), [again](../other.md#a-section-code-twice-1),
        [here](#its-own-heading), [the folder](../docs/), [the web](https://example.com/missing), `[code](gone.md)`.
        Broken: [no file](missing.md), [no heading](../other.md#no-such-section), [no anchor here](#nowhere),
        [out](../../outside.md), ![a picture
        over two lines](pictures/gone.png).

        ```bash
        echo "[not a link](gone.md)"
        ```
        """)
    )
    assert broken_links(page, root=tmp_path) == [
        "docs/page.md:7: (missing.md): no file docs/missing.md",
        "docs/page.md:7: (../other.md#no-such-section): no heading #no-such-section in other.md",
        "docs/page.md:7: (#nowhere): no heading #nowhere in docs/page.md",
        "docs/page.md:8: (../../outside.md): leads outside the repository",
        "docs/page.md:8: (pictures/gone.png): no file docs/pictures/gone.png",
    ]


def code_blocks(section: str, language: str) -> list[str]:
    return [block.split("```", 1)[0] for block in section.split(f"```{language}\n")[1:]]


def readme_section(heading: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_own_model_quick_start_is_a_study_that_loads(tmp_path):
    """The factory and the study of "Your own Keras model", written as printed, pass every check that
    runs when the file loads (the factory imported, its arguments against `model:` and `space:`)."""
    from tuning.config.schema import load_study

    section = readme_section("Your own Keras model")
    (factory,), (study,) = code_blocks(section, "python"), code_blocks(section, "yaml")
    (tmp_path / "my_model.py").write_text(factory)
    (tmp_path / "my_study.yaml").write_text(study)
    assert len(factory.strip().splitlines()) <= 10
    config = load_study(tmp_path / "my_study.yaml")
    assert config.model.build == "my_model.py:build_model"
    assert set(config.space) == {"n_hidden", "n_neurons", "learning_rate"}


def test_the_readme_table_quick_start_is_a_study_that_loads(tmp_path):
    from tuning.config.schema import load_study

    (study,) = code_blocks(readme_section("Quick start"), "yaml")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "customers.csv").write_text("age,churned\n30,yes\n40,no\n")
    (tmp_path / "my_table.yaml").write_text(study)
    config = load_study(tmp_path / "my_table.yaml")
    assert config.dataset.target == "churned"
