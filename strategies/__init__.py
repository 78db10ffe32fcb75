"""Hypothesis strategies for the conformance suite.

Small composable pieces, split by concern: `shapes` (broadcastable, one-way and
incompatible shapes), `layouts` (the same values in different memory), `values`
(dtypes, elements, fill values, logits) and `masks` (random, structured and attention
masks).
"""

from strategies._cache import booleans, sampled_from  # noqa: F401
from strategies.shapes import (  # noqa: F401
    array_shapes,
    broadcastable_shapes,
    expand_sizes,
    incompatible_shapes,
    inplace_shape_pairs,
    misalignable_pairs,
    negative_size_shapes,
    one_way_pairs,
    stretched_to_zero,
)
from strategies.layouts import layouts, tensors  # noqa: F401
from strategies.values import (  # noqa: F401
    FillValue,
    dtypes,
    elements,
    fill_values,
    logits,
)
from strategies.masks import (  # noqa: F401
    attention_masks,
    bool_masks,
    keep_masks,
    masked_fill_args,
    non_bool_masks,
)
