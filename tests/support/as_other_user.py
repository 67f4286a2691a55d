"""Run a check as another user, for the file-permission tests.

Root may write any file whatever its mode, so a test running as root cannot see what
the service user sees by changing modes alone. Here the code under test runs in a
forked child that has dropped to `nobody` (setgroups, setgid, setuid: for good, as a
service user is): the kernel then refuses it exactly as it would refuse the service.
The child may use only what is already imported (it cannot read root's Python
install), so the functions it runs are imported by the test first.

`folder()` makes a scratch folder the child can reach: pytest's own temporary folders
sit under a root-only one.
"""

from __future__ import annotations

import os
import pickle
import pwd
import shutil
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

OTHER_USER = "nobody"


@dataclass(frozen=True)
class Raised:
    """What the child raised: its type's name and its message (exceptions with their
    own constructor arguments do not always survive pickling)."""

    type_name: str
    message: str


def other_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root: only root can make a file another user may not write")
    return pwd.getpwnam(OTHER_USER)


def run_as_other_user(fn: Callable[[], Any]) -> Any:
    """`fn()` as OTHER_USER in a forked child: its return value, or Raised."""
    user = other_user()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns to pytest
        code = 0
        try:
            os.close(read_fd)
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            try:
                result: Any = fn()
            except BaseException as exc:
                result = Raised(type(exc).__name__, str(exc))
            with os.fdopen(write_fd, "wb") as out:
                pickle.dump(result, out)
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and data, "the child failed (see stderr)"
    return pickle.loads(data)  # our own child's answer


@contextmanager
def folder(owner: str = OTHER_USER) -> Iterator[Path]:
    """A fresh folder under the system temp dir, owned by `owner`, mode 0755."""
    other_user()  # skips unless root
    path = Path(tempfile.mkdtemp(prefix="keepa-perm-"))
    try:
        path.chmod(0o755)
        owned = pwd.getpwnam(owner)
        os.chown(path, owned.pw_uid, owned.pw_gid)
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
