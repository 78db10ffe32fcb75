"""Self-test wiring: Hypothesis profiles, and the mutant kill table in the summary."""

from conformance import profiles

profiles.load_from_environment()


def pytest_terminal_summary(terminalreporter):
    from selftests.mutant_runs import KILL_TABLE
    if KILL_TABLE:
        terminalreporter.section("mutant kill table")
        for line in KILL_TABLE:
            terminalreporter.write_line(line)
