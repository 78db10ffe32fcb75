"""``python -m conformance.explain SHAPE SHAPE ...``: the oracle's broadcast alignment table.

Each SHAPE is comma-separated sizes (``2,1,1,5``; ``()`` or an empty string for a 0-d tensor;
brackets and spaces are accepted: ``"[2, 1, 1, 5]"``).  Prints the table the failure messages
print (`conformance.rules.explain`), then the broadcast shape, or the dimension that fails
and why.  With ``--to TARGET`` it also applies the one-way rule of ``expand``,
``broadcast_to`` and in-place ops (the first shape must stretch to TARGET without changing it).

Exit codes: 0 the shapes broadcast (and stretch to TARGET), 1 they do not, 2 a SHAPE that is not
a shape (one line on stderr).  Pure Python: it does not import torch.
"""

from __future__ import annotations

import argparse
import re
import sys

from conformance import rules

EXAMPLE = "python -m conformance.explain 2,1,1,5 2,2,5,5"


class BadShape(ValueError):
    """An argument that is not a shape; the message is one line."""


def parse_shape(text: str) -> tuple[int, ...]:
    """'2,1,1,5' (or '[2, 1, 1, 5]', '(2,)', '()', '') -> (2, 1, 1, 5)."""
    body = text.strip()
    if len(body) >= 2 and body[0] + body[-1] in ("()", "[]"):
        body = body[1:-1]
    parts = [p.strip() for p in body.split(",")]
    if parts and parts[-1] == "":
        parts = parts[:-1]  # '2,' is the 1-d shape (2,)
    if parts == [] or parts == [""]:
        return ()
    sizes = []
    for p in parts:
        if not re.fullmatch(r"-?\d+", p):
            raise BadShape(f"{text!r} is not a shape: {p!r} is not an integer size "
                           f"(write sizes separated by commas, e.g. {EXAMPLE})")
        sizes.append(int(p))
    return tuple(sizes)


def report(shapes: list[tuple[int, ...]], target: tuple[int, ...] | None = None) -> tuple[bool, str]:
    """(whether the shapes broadcast, and stretch to `target` if given; the text to print)."""
    lines = [rules.explain(*shapes)]
    ok = True
    if any(s < 0 for shape in shapes for s in shape):
        bad = next(shape for shape in shapes if any(s < 0 for s in shape))
        lines.append(f"not a valid shape: {bad} has a negative size")
        return False, "\n".join(lines)
    try:
        result = rules.broadcast_shapes(*shapes)
        lines.append(f"result: {result}")
    except rules.BroadcastError as e:
        ok = False
        lines.append("error: " + str(e).split("\n", 1)[0])
    if target is not None:
        lines.append("")
        lines.append(rules.explain(shapes[0], target, names=["#0", "target"]).replace(
            "broadcast alignment", f"{shapes[0]} against the target {target}", 1))
        if rules.can_broadcast_to(shapes[0], target):
            lines.append(f"{shapes[0]} stretches to {target}: expand, broadcast_to and in-place ops accept it")
        else:
            ok = False
            lines.append(f"{shapes[0]} does not stretch to {target}: expand and broadcast_to raise, and an "
                         f"in-place op whose self has shape {target} refuses it (self is never broadcast)")
    return ok, "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.explain", description=__doc__.split("\n\n")[0],
                                     epilog=f"example: {EXAMPLE}")
    parser.add_argument("shapes", nargs="+", metavar="SHAPE", help="comma-separated sizes, e.g. 2,1,1,5")
    parser.add_argument("--to", metavar="TARGET", help="also check that the first SHAPE stretches to TARGET")
    # a shape that starts with a minus ("-1,3") is a (bad) shape, not an option: argparse takes
    # only plain negative numbers as values, so such an argument is passed on with a leading space
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args([f" {a}" if re.match(r"-\d", a) else a for a in argv])
    try:
        shapes = [parse_shape(s) for s in args.shapes]
        target = parse_shape(args.to) if args.to is not None else None
        negative = next((s for s in [*shapes, target] if s is not None and any(n < 0 for n in s)), None)
        if negative is not None:
            raise BadShape(f"{negative} is not a shape: sizes are 0 or more (e.g. {EXAMPLE})")
    except BadShape as e:
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return 2
    ok, text = report(shapes, target)
    print(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
