"""Paths and URLs as reports, logs and saved configs show them: paths relative to the working directory when
inside it (committed results carry no machine's absolute paths), URLs without their passwords."""

from __future__ import annotations

import re
from pathlib import Path

_SECRET_QUERY = re.compile(r"(?i)\b(password|passwd|pwd|secret|token|api_key)=[^&;]*")


def shown_path(path: str | Path) -> str:
    """``path`` relative to the current directory when it lies inside it, else unchanged."""
    try:
        return Path(path).resolve().relative_to(Path.cwd().resolve()).as_posix()
    except (ValueError, OSError):
        return str(path)


def masked_url(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part and secret query values replaced by ``***``
    (``postgresql://me:pw@host/db`` -> ``postgresql://me:***@host/db``); text without ``://`` unchanged."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, tail = rest.partition("/")
    if "@" in netloc:
        credentials, host = netloc.rsplit("@", 1)
        user, colon, _ = credentials.partition(":")
        netloc = f"{user}:***@{host}" if colon else f"{credentials}@{host}"
    return _SECRET_QUERY.sub(lambda m: f"{m.group(1)}=***", f"{scheme}://{netloc}{slash}{tail}")


def shown_storage(url: str) -> str:
    """A storage URL as shown and stored: a file-backed one with its path shown as :func:`shown_path` does,
    any other without its password (:func:`masked_url`).

    Handles the trial log's ``exitspace-sqlite://<path>`` and SQLAlchemy's ``sqlite:///<path>`` (both
    read a relative path against the working directory).
    """
    for prefix in ("exitspace-sqlite://", "sqlite:///"):
        if url.startswith(prefix):
            return prefix + shown_path(url[len(prefix):])
    return masked_url(url)
