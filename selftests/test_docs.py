"""The front door and its generated pages: the mask atlas is what the CI torch computes today,
the explain command prints the oracle's table, and every relative link in README.md and docs/
points at a file that exists."""

from __future__ import annotations

import math
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from conformance import explain
from reports import atlas

ROOT = Path(__file__).resolve().parent.parent
CI_TORCH = "2.13.0"  # the `test` group's torch (pyproject.toml): the release the atlas is committed for


def test_the_committed_atlas_is_what_the_ci_torch_computes():
    version, situations = atlas.build()
    if not version.startswith(CI_TORCH):
        pytest.skip(f"docs/atlas.md is committed for torch {CI_TORCH}; this is torch {version}: run "
                    "`python -m reports atlas --markdown FILE --html FILE` to see this release's")
    stale = "stale: regenerate it with `python -m reports atlas`"
    assert (ROOT / "docs" / "atlas.md").read_text(encoding="utf-8") == atlas.markdown(version, situations), stale
    assert (ROOT / "docs" / "atlas.html").read_text(encoding="utf-8") == atlas.html(version, situations), stale


def test_the_atlas_covers_every_idiom_and_situation_and_links_each_cell():
    version, situations = atlas.build()
    from conformance.implementations import IMPLEMENTATIONS
    titles = " ".join(s.title for s in situations)
    for words in ("Padding", "Causal, square", "L < S", "L > S", "no kept key", "fully masked row",
                  "+inf, nan", "float16"):
        assert words in titles
    idiom_cells = [c for s in situations for c in s.cells if "masked_softmax.py" in c.checked_by]
    assert {c.checked_by.rsplit("-", 1)[-1].rstrip("]") for c in idiom_cells} >= set(IMPLEMENTATIONS)
    for s in situations:
        for c in s.cells:
            module = c.checked_by.split("::")[0]
            assert (ROOT / "conformance" / module).is_file(), c.checked_by
            name = c.checked_by.split("::")[1].split("[")[0]
            assert f"def {name}(" in (ROOT / "conformance" / module).read_text(), c.checked_by


class _Page(HTMLParser):
    """What the atlas page's self-test looks at: text, ids, in-page links, heatmap tables."""

    def __init__(self):
        super().__init__()
        self.text, self.ids, self.links, self.heatmaps, self.h2 = [], set(), [], 0, []
        self._in_h2 = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "a" and a.get("href", "").startswith("#"):
            self.links.append(a["href"][1:])
        if tag == "table" and "hm" in (a.get("class") or "").split():
            self.heatmaps += 1
        self._in_h2 = tag == "h2"

    def handle_endtag(self, tag):
        self._in_h2 = False if tag == "h2" else self._in_h2

    def handle_data(self, data):
        self.text.append(data)
        if self._in_h2:
            self.h2.append(data)


def test_the_atlas_page_has_anchors_a_contents_list_heatmaps_and_no_markup_leaks():
    """atlas.html: every in-page link lands on an id, every situation is in the contents list,
    each matrix is a heatmap table, no Markdown backtick leaks into the text, every cell has a
    verdict, and the cells whose value comes from the construction carry a note."""
    version, situations = atlas.build()
    page = _Page()
    page.feed(atlas.html(version, situations))
    text = "".join(page.text)
    assert "`" not in text, text[max(0, text.index("`") - 80):text.index("`") + 80]
    assert page.links and all(link in page.ids for link in page.links), set(page.links) - page.ids
    assert len(page.links) == len(situations) == len(page.h2)
    cells = [c for s in situations for c in s.cells]
    assert page.heatmaps == sum((c.got.rows is not None) + (c.oracle.rows is not None) for c in cells)
    assert text.count("agrees with the oracle") + text.count("differs from the oracle") + \
        text.count("raises (see the text)") == len(cells)
    sdpa_junk = [c for s in situations if "+inf, nan" in s.title for c in s.cells if c.checked_by.endswith("-sdpa]")]
    assert sdpa_junk and all("the construction, not the mask" in c.note for c in sdpa_junk)
    for words in ("[B, T] padding mask", "float 0/1 mask", "Padded queries"):
        assert any(words in s.title for s in situations), words


def test_the_atlas_verdict_can_say_differs_and_follows():
    """A cell's verdict compares with the oracle on kept rows and with the policy on empty rows."""
    keep = [[True, False], [False, False]]
    oracle = atlas._oracle(keep)
    agree = atlas.Cell("x", atlas.Outcome("", [[1.0, 0.0], [0.0, 0.0]]), oracle, "", "m.py::t", keep=keep,
                       empty="zeros")
    wrong = atlas.Cell("x", atlas.Outcome("", [[0.5, 0.5], [math.nan, math.nan]]), oracle, "", "m.py::t",
                       keep=keep, empty="zeros")
    raised = atlas.Cell("x", atlas.Outcome("raises E", None), oracle, "", "m.py::t")
    assert agree.verdict() == ("agrees", "follows")
    assert wrong.verdict() == ("differs", "differs")
    assert raised.verdict() == ("raises", "")


def test_explain_prints_the_alignment_table_and_the_result(capsys):
    assert explain.main(["2,1,1,5", "2,2,5,5"]) == 0
    out = capsys.readouterr().out
    assert "stretched from 1 to 5" in out and out.rstrip().endswith("result: (2, 2, 5, 5)")
    assert explain.main(["[2, 3]", "4,3,2"]) == 1
    assert "dimension -1 has sizes 3, 2" in capsys.readouterr().out
    assert explain.main(["3", "--to", "2,3"]) == 0
    assert explain.main(["2,3", "--to", "3"]) == 1
    assert explain.parse_shape("()") == () and explain.parse_shape("5,") == (5,)


def test_explain_refuses_a_bad_shape_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "conformance.explain", "2,x", "3"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "'x' is not an integer size" in proc.stderr


@pytest.mark.parametrize("args, words", [
    (["-1,3"], "(-1, 3) is not a shape"),               # a negative first size: a shape, not an option
    (["--", "3,-2", "3"], "(3, -2) is not a shape"),    # after --, still bad input (exit 2, not 1)
    (["3", "--to=-1,3"], "(-1, 3) is not a shape"),     # a bad target
    (["3", "2,,3"], "'' is not an integer size"),
])
def test_explain_refuses_negative_and_malformed_sizes_with_one_line_and_exit_2(args, words):
    proc = subprocess.run([sys.executable, "-m", "conformance.explain", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and proc.stdout == "", (proc.returncode, proc.stdout)
    assert proc.stderr.count("\n") == 1 and words in proc.stderr, proc.stderr


def test_explain_shows_a_missing_dim_as_missing_and_the_target_in_its_table(capsys):
    assert explain.main(["3", "2,3", "--to", "4,2,3"]) == 0
    out = capsys.readouterr().out
    assert "stretched from 1 to 2 (missing in #0: a 1)" in out and " equal " not in out.splitlines()[3]
    assert "target (4, 2, 3)" in out and "stretched from 1 to 4 (missing in #0: a 1)" in out


_LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


@pytest.mark.parametrize("page", ["README.md", *sorted(p.relative_to(ROOT).as_posix()
                                                        for p in (ROOT / "docs").glob("*.md"))])
def test_every_relative_link_points_at_a_file(page):
    text = (ROOT / page).read_text(encoding="utf-8")
    broken = [t for t in _LINK.findall(text) if not re.match(r"[a-z]+:", t)
              and not ((ROOT / page).parent / t).exists()]
    assert not broken, f"{page} links to missing files: {broken}"
