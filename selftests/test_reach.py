"""Reach: the input classifiers, the claims, and the gate that fails on an unreached claim.

The committed baseline is a `ci` run of the suite: every claim it records must be reached
there (the same check `python -m reports compare` makes on every fresh run).
"""

from __future__ import annotations

import copy

import pytest
import torch

from conformance import reach
from reports import compare, schema
from reports.compare import BASELINE


def test_size_classes_name_powers_their_neighbours_and_the_rest():
    assert [reach.band(n) for n in (0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 13, 255, 256, 257, 1000)] == [
        "0", "1", "2^1", "2^1+1", "2^2", "2^2+1", "2^2<n<2^3 even", "2^3-1", "2^3", "2^3+1",
        "2^3<n<2^4 even", "2^3<n<2^4 odd", "2^8-1", "2^8", "2^8+1", "2^9<n<2^10 even"]
    for cls in reach.bands(4096):
        assert all(reach.band(n) == cls for n in reach.members(cls, 4096))
    assert sum(len(reach.members(c, 4096)) for c in reach.bands(4096)) == 4097


def test_claims_of_sizes_cover_each_range_octave_and_power():
    assert reach.ranges("w", 20, 1, edges=(1, 16)) == (
        "w:1", " | ".join(dict.fromkeys(f"w:{reach.band(n)}" for n in range(2, 17))),
        " | ".join(dict.fromkeys(f"w:{reach.band(n)}" for n in range(17, 21))))
    assert reach.octaves("w", 9) == ("w:0", "w:1", "w:2^1 | w:2^1+1", "w:2^2 | w:2^2+1 | w:2^2<n<2^3 even | w:2^3-1",
                                     "w:2^3 | w:2^3+1")
    assert reach.boundaries("w", 9, 1) == ("w:1 | w:2^1", "w:1 | w:2^1 | w:2^1+1", "w:2^1+1 | w:2^2 | w:2^2+1",
                                           "w:2^3-1 | w:2^3 | w:2^3+1")


def test_a_claim_is_a_class_a_glob_or_alternatives():
    counts = {"add.a.layout:permuted": 3, "mul.a.numel:0": 1}
    assert reach.unreached(["add.a.layout:permuted", "add.a.layout:strided"], counts) == ["add.a.layout:strided"]
    assert reach.unreached(["*.a.numel:0", "*.b.numel:0"], counts) == ["*.b.numel:0"]
    assert reach.unreached(["add.a.layout:strided | add.a.layout:permuted"], counts) == []
    assert reach.claim_count("*.a.* | add.a.layout:permuted", counts) == 7


@pytest.mark.parametrize("view, kinds", [
    (lambda x: x, {"contiguous"}),
    (lambda x: x.permute(2, 0, 1), {"permuted"}),
    (lambda x: x[:, :, ::2], {"strided"}),
    (lambda x: x[1], {"offset"}),
    (lambda x: x[:1].expand(5, 3, 4), {"expanded"}),
    (lambda x: x[1:].permute(2, 1, 0)[::2], {"offset", "permuted", "strided"}),
])
def test_layouts_are_read_off_strides_and_offset(view, kinds):
    assert reach.layouts_of(view(torch.arange(24.0).reshape(2, 3, 4))) == kinds


def test_special_values_are_found():
    assert reach.values_of(torch.tensor([float("nan"), -0.0, 1e-40, 3e38, float("-inf")])) == {
        "nan", "-0", "subnormal", "huge", "-inf"}
    assert reach.values_of(torch.tensor([1.0, 2.0])) == set()
    assert reach.values_of(torch.tensor([2**31 - 1, -(2**31)], dtype=torch.int32)) == {"max", "min"}


def test_mask_rows_and_variation_are_classified():
    m = torch.tensor([[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1], [1, 0, 1, 0]], dtype=torch.bool)
    assert reach.mask_rows_of(m) == {"prefix", "one", "none", "all", "other"}
    per_head = torch.zeros(2, 3, 4, 4, dtype=torch.bool)
    per_head[0, 1, 0, 0] = True
    assert reach.mask_varies(per_head) == {"dim-3", "dim-4"}
    per_batch = torch.zeros(2, 3, 4, 4, dtype=torch.bool)
    per_batch[0, :, 0, 0] = True
    assert reach.mask_varies(per_batch) == {"dim-4"}


def test_an_op_call_is_classified_by_what_the_backend_receives():
    got = reach.classify("add", (torch.zeros(2, 3), torch.zeros(3, dtype=torch.float64)), {})
    assert {"add.a.ndim:2", "add.b.dtype:float64", "add.rank:mixed", "add.rank:a-highest"} <= got
    assert "add.stretch:1-vs-n" in reach.classify("add", (torch.zeros(2, 3), torch.zeros(1, 3)), {})
    q = torch.zeros(1, 2, 5, 4)
    got = reach.classify("scaled_dot_product_attention", (q, torch.zeros(1, 2, 7, 4), torch.zeros(1, 2, 7, 4)),
                         {"attn_mask": torch.ones(1, 1, 1, 7, dtype=torch.bool)})
    assert {"scaled_dot_product_attention.L<S", "scaled_dot_product_attention.S:2^3-1",
            "scaled_dot_product_attention.attn_mask.form:(B,1,1,S)"} <= got
    assert "broadcast_shapes.size:negative" in reach.classify("broadcast_shapes", ((2, -1), (3,)), {})


def test_the_committed_baseline_reaches_every_claim():
    """The reach self-test: in the ci run the baseline records, no claimed class is without
    an example (what compare checks on every fresh run)."""
    diff = compare.compare(schema.load(BASELINE), schema.load(BASELINE))
    assert not diff.unreached, [(c.id, c.note) for c in diff.unreached]
    claimed = [r for r in schema.load(BASELINE)["results"] if (r.get("reach") or {}).get("claimed")]
    assert len(claimed) >= 90, "the baseline should carry the reach claims of every property"


def _with_unreached(doc, *, profile="ci"):
    doc = copy.deepcopy(doc)
    doc["environment"]["hypothesis"]["profile"] = profile
    r = next(r for r in doc["results"] if (r.get("reach") or {}).get("claimed"))
    dropped = r["reach"]["claimed"][0]
    r["reach"]["counts"] = {k: n for k, n in r["reach"]["counts"].items() if not reach._matches_any(dropped, k)}
    r["reach"]["unreached"] = reach.unreached(r["reach"]["claimed"], r["reach"]["counts"])
    return doc, r["id"]


def test_compare_fails_on_an_unreached_claim_of_a_ci_run_only():
    base = schema.load(BASELINE)
    cand, test_id = _with_unreached(base)
    diff = compare.compare(base, cand)
    assert [c.id for c in diff.unreached] == [test_id] and compare.failing(diff)
    assert "did not reach every input class" in compare.verdict(diff)
    selftest_run, _ = _with_unreached(base, profile="selftest")
    diff = compare.compare(base, selftest_run, across=True)  # another profile, on purpose
    assert not diff.unreached and not compare.failing(diff)
    assert any("not judged" in w for w in diff.warnings)
