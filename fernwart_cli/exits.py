"""The exit codes of every ``fernwart`` command: one table, sysexits(3) style.

Scripts test these, so a condition means the same code in every command: "controller
unreachable" is 69 whether ``devices list``, ``catalog import`` or ``catalog list`` said it.
README.md ("Exit codes") documents this table; tests/test_exits.py keeps the two in step.
"""

from __future__ import annotations

from typing import Final

OK: Final = 0
FAILURE: Final = 1  # something failed, or some items (documents, tokens) were rejected: the rest went through
USAGE: Final = 2  # bad arguments or an unreadable input file (argparse uses 2 as well)
DATAERR: Final = 65  # EX_DATAERR: the query was refused as invalid; an inventory nothing of which maps
UNAVAILABLE: Final = 69  # EX_UNAVAILABLE: the controller, provider or device cannot be reached
SOFTWARE: Final = 70  # EX_SOFTWARE: an unexpected answer (a bug here or there)
NOPERM: Final = 77  # EX_NOPERM: the controller refused the API token / the device the credentials
CONFIG: Final = 78  # EX_CONFIG: invalid configuration; systemd does not restart (RestartPreventExitStatus=78)

TABLE: Final[dict[int, str]] = {
    OK: "success",
    FAILURE: "failure, or some items were rejected (the rest went through)",
    USAGE: "usage error: bad arguments or an unreadable input file",
    DATAERR: "invalid data: the controller refused the query, or no device of an inventory maps (EX_DATAERR)",
    UNAVAILABLE: "the controller, provider or device cannot be reached (EX_UNAVAILABLE)",
    SOFTWARE: "an unexpected answer (EX_SOFTWARE)",
    NOPERM: "the controller refused the API token, or the device the credentials (EX_NOPERM)",
    CONFIG: "invalid configuration (EX_CONFIG); systemd does not restart a daemon that exited 78",
}
