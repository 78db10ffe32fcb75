"""Reach: the input classes where an implementation may branch, observed at every op call.

A kernel branches on what it is given: the size of the dim it reduces or vectorises over
(block and vector widths are powers of two, so the sizes around them), empty and 0-d
tensors, the memory layout, the dtype, special values, the pattern of a mask, operands of
different rank, invalid arguments.  Each op call a property makes through the backend is
classified here, from the arguments as the backend receives them, into class names such as
``softmax.x.layout:permuted`` or ``softmax.width:2^9+1``; a property's example counts each
class it reached once.  The same classifiers are the trigger conditions of the generated
fault zoo (`selftests.zoo`): a fault fires exactly on the inputs of a class.

Each property *claims* the classes its strategy must reach (the ``reach`` marker, built
with the helpers at the end of this module); the report shows per property how many `ci`
examples fell in each class, and ``python -m reports compare`` fails when a claimed class
got fewer than its margin, max(3, 1 %) of the examples (`margin`; docs/reach.md lists the
claims per family).

Classes are recorded with Hypothesis's ``event()`` too (``--hypothesis-show-statistics``
shows them); the counts in the report are kept here because Hypothesis has no public API
that hands a test's events to a plugin.

The package: `recording` (the current example's classes, the tally), `classes` (the
classifiers and the size bands and tiles), `observe` (each op call and each input a property
builds, classified into the current example), `claims` (the claim builders, counting, margin).
Everything is re-exported here: properties write ``reach.of(...)``, ``reach.note(...)``.
"""

from __future__ import annotations

from conformance.reach.recording import (  # noqa: F401
    announce, begin, end, note, take_tally, tally
)
from conformance.reach.classes import (  # noqa: F401
    ARGS, BROADCASTING, FLASH_KV_BLOCK, FLOAT_SPECIALS, INT_SPECIALS, LAYOUTS, MASK_ROWS,
    MAX_VALUES_SCAN, TILES, band, bands, blocks, classify, flash_q_block, layouts_of, mask_rows_of,
    mask_varies, members, tensor_classes, tile, tile_pair, tiles_between, values_of
)
from conformance.reach.observe import (  # noqa: F401
    Observed, note_result, note_softmax, note_tensor
)
from conformance.reach.claims import (  # noqa: F401
    CLASSIFY_EVERY, MARGIN_FLOOR, MARGIN_SHARE, Pending, boundaries, broadcasting, claim_count,
    claim_matches, claimed, dtypes, layouts, margin, mask, octaves, of, operand, params, ranges, sizes,
    specials, stretched_to_0, unreached
)
