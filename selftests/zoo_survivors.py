"""Zoo mutants that no property can catch, each with the reason (see selftests/test_zoo.py)."""

SURVIVORS: dict[str, str] = {}
