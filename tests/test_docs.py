"""The README is a front page whose generated results block stays single, and whose links resolve."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import results_table  # noqa: E402


def test_into_readme_twice_leaves_one_results_block(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copy(REPO / "README.md", readme)
    pages = [REPO / "benchmarks" / "results.md", REPO / "benchmarks" / "results-reinforce.md"]
    for _ in range(2):
        results_table.copy_into_readme(pages, readme)
    text = readme.read_text()
    assert text.count(results_table.START) == 1 and text.count(results_table.END) == 1
    block = text.split(results_table.START, 1)[1].split(results_table.END, 1)[0]
    assert block.count("### Results") == 1
    assert block.count("| config | algo |") == 1  # one table: the second page's rows joined the first
    for page in pages:  # every row of every page is in it, once
        for row in [line for line in page.read_text().splitlines() if line.startswith("| configs/")]:
            assert block.count(row) == 1
    assert text.replace(block, "") == (REPO / "README.md").read_text().replace(
        (REPO / "README.md").read_text().split(results_table.START, 1)[1].split(results_table.END, 1)[0], ""
    )


def test_readme_is_a_front_page_and_its_links_resolve() -> None:
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 250
    headings = [line for line in text.splitlines() if line.startswith("#")]
    levels = [len(h) - len(h.lstrip("#")) for h in headings]
    assert all(b - a <= 1 for a, b in zip(levels, levels[1:], strict=False)), "a heading level is skipped"
    for target in re.findall(r"\]\(((?:docs|tests|configs|benchmarks)/[^)#]+)", text):
        assert (REPO / target).exists(), target
