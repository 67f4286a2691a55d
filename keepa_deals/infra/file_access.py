"""Who this process is and who owns a file: what a permission error must name.

A file the service user cannot read or write is almost always an operator's command
run as root (`sudo keepa-deals migrate`, an editor under sudo). "Permission denied"
alone does not say that; the owner, the mode and the user asking do.
"""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path


def _user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # a uid with no passwd entry (a container's, a deleted user's)
        return str(uid)


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def current_user() -> str:
    """`keepa-deals (uid 998)`: the user this process acts as."""
    uid = os.geteuid()
    return f"{_user_name(uid)} (uid {uid})"


def current_user_name() -> str:
    return _user_name(os.geteuid())


def current_group_name() -> str:
    return _group_name(os.getegid())


def owner_and_mode(path: str | os.PathLike[str]) -> str:
    """`owned by root:root, mode 0644`, or why the file cannot be looked at."""
    try:
        st = Path(path).stat()
    except OSError as exc:
        return f"not inspectable ({exc.strerror})"
    return (
        f"owned by {_user_name(st.st_uid)}:{_group_name(st.st_gid)}, mode {st.st_mode & 0o7777:04o}"
    )


def may(path: str | os.PathLike[str], mode: int) -> bool:
    """os.access for the effective user, as open() checks it."""
    return os.access(path, mode, effective_ids=os.access in os.supports_effective_ids)
