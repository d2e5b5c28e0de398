"""The documentation a user of the repository or of the package gets: every link resolves inside
the repository, and the maths the docstrings cite is there (docs/math.md)."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("README.md", "docs", "clients", "service", "streaming", "Dockerfile", "Makefile")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")


def product_files() -> list[Path]:
    files: list[Path] = []
    for name in PRODUCT:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [p for p in candidates if p.is_file() and p.suffix != ".pyc"]
    return files


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "clients/README.md"]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_links_resolve_inside_the_repository(path: Path) -> None:
    broken = []
    for target in MARKDOWN_LINK.findall(path.read_text()):
        if target.startswith(("http://", "https://", "#")):
            continue
        resolved = (path.parent / target.split("#")[0]).resolve()
        if not resolved.is_relative_to(ROOT) or not resolved.exists():
            broken.append(target)
    assert broken == []


def test_no_file_of_the_product_points_outside_the_repository() -> None:
    outside = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in product_files()
        for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
        if "../shared" in line or re.search(r"(?<!docs/)MATH\.md", line)
    ]
    assert outside == []


def test_math_page_covers_every_formula_the_code_cites() -> None:
    text = (ROOT / "docs/math.md").read_text()
    cited = set()
    for p in product_files():
        if p.suffix == ".py":
            cited |= set(re.findall(r"Eq\. (\d+)", p.read_text()))
    documented = set(re.findall(r"Eq\. (\d+)", text))
    assert cited - documented == set()
    for topic in ("## 4. The entropy ELBO", "## 5. BIC", "switch_margin", "collapse_threshold"):
        assert topic in text
