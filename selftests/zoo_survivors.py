"""Zoo mutants that no property can catch, each with the reason (see selftests/test_zoo.py).

Empty: every mutant the zoo generates is killed.  A template that cannot show on an op (its
fault gives the same result on every valid input, within the op's tolerance) is not applied
to that op at all (see the comments at `selftests.zoo.TEMPLATES`); this list is for a
mutant that could show but that the suite cannot reach, with the reason.
"""

SURVIVORS: dict[str, str] = {}
