"""The one error type every part raises for bad input: the CLI prints its message and exits 2."""


class InputError(Exception):
    """Bad input (a file, a field, an argument). The message is one line naming where and what was expected."""

    exit_code = 2
