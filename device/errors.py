"""The one base class of the kit's user-facing errors.

Every error a user can fix (a bad flag, a missing file, a bundle that needs rebuilding) derives
from UserError. Each command-line tool catches UserError alone, prints its message as one
`error:` line and exits with its `exit_status`; anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """A mistake the user can fix; the message names what is wrong and how to fix it."""

    exit_status = 2
