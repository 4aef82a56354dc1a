"""The README's two set-up commands and its measured figures."""

from __future__ import annotations

import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_figures_equal_the_benchmark_results():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "readme_numbers.py"),
                           "--check"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_readme_starts_with_the_two_commands():
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert block[0].endswith("raytag demo") and "pip install -e ." in block[0]
    assert block[1].endswith("python -m pytest") and "[dev]" in block[1]
    assert all("torch==2.13.0" in line for line in block)


def test_readme_links_point_to_files_that_exist():
    import re

    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if "://" not in target:
            assert (ROOT / target).exists(), target


def test_docs_links_point_to_files_that_exist():
    import re

    for page in (ROOT / "docs").glob("*.md"):
        for target in re.findall(r"\]\(([^)#]+)\)", page.read_text()):
            if "://" not in target:
                assert (page.parent / target).exists(), f"{page.name}: {target}"
