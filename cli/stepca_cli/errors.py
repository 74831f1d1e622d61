from __future__ import annotations


class StepError(Exception):
    """An error the user can act on: printed alone on stderr, exit code 1."""

    exit_code = 1


def required_flag(command: str, flag: str) -> StepError:
    return StepError(f"'{command}' requires the '--{flag}' flag")


def incompatible(flag: str, other: str) -> StepError:
    return StepError(f"flag '--{flag}' is incompatible with '--{other}'")
