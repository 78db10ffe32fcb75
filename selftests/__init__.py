"""The suite's own tests: the oracle, the strategies, and the mutant kill test."""
