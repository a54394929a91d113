"""The README and docs/ quote result files verbatim (between `<!-- quote: PATH -->` and `<!-- end quote -->`, optionally
inside a code fence), so its numbers are the committed results' and go stale only with a failing test."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[1]
QUOTE = re.compile(r"<!-- quote: (?P<path>\S+) -->\n(?P<body>.*?)\n<!-- end quote -->", re.S)


def quotes(text: str) -> dict[str, str]:
    """{path: quoted text} with a surrounding ``` fence removed."""
    found = {}
    for match in QUOTE.finditer(text):
        body = re.sub(r"\A```[a-z]*\n(.*)\n```\Z", r"\1", match["body"].strip(), flags=re.S)
        found[match["path"]] = body.strip()
    return found


def test_quotes_parse_fenced_and_plain_blocks():
    text = (
        'a\n<!-- quote: x.json -->\n```json\n{"a": 1}\n```\n<!-- end quote -->\n'
        "<!-- quote: t.md -->\n| t |\n<!-- end quote -->\n"
    )
    assert quotes(text) == {"x.json": '{"a": 1}', "t.md": "| t |"}


def committed(path: str) -> str:
    """The file as committed (HEAD): a `dvc repro` on another machine may rewrite the working copy; outside a git
    checkout, the file itself."""
    proc = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=ROOT, capture_output=True, text=True)
    return proc.stdout if proc.returncode == 0 else (ROOT / path).read_text()


def test_readme_quotes_the_committed_results():
    found = quotes((ROOT / "README.md").read_text())
    assert {"results/benchmarks/seed_spread.json", "results/paper/table2.md"} <= set(found)
    for path, body in found.items():
        assert body == committed(path).strip(), f"README quotes {path}: copy the committed file into its block again"


def test_docs_quote_the_committed_results():
    pages = sorted((ROOT / "docs").glob("*.md"))
    assert pages, "docs/ has no pages"
    for page in pages:
        for path, body in quotes(page.read_text()).items():
            assert body == committed(path).strip(), f"{page.name} quotes {path}: copy the committed file again"


LINK = re.compile(r"\]\((?!https?://|#|mailto:)(?P<target>[^)#\s]+)(?:#[^)]*)?\)")


def test_relative_links_resolve():
    """Every relative link of the README and docs/ names a file or folder of the repository."""
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for match in LINK.finditer(page.read_text()):
            target = (page.parent / match["target"]).resolve()
            assert target.exists(), f"{page.relative_to(ROOT)} links {match['target']}, which does not exist"
