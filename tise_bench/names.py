"""Names that become paths, checked once where they are given (config, API, leaderboard options).

``model.name``, ``data.name``, the demo suite's names and the leaderboard's ``data`` name folders:
``<results_dir>/<data.name>/<model.name>/``. Each must be one path component of a small safe alphabet, so no
name can reach outside the results folder (``../x``, ``/abs``), hide itself (``.x``) or break a file listing or
a table (newline, NUL). Sample ids are looser (a manifest's ids are matched against file names, unicode and
spaces included) but the ones written as ``<id>.png`` must still be a single, visible file name.
"""

from __future__ import annotations

import re
import unicodedata

from .errors import ConfigError

#: A run or eval-set name: ASCII letters and digits first, then letters, digits, ``.``, ``_``, ``+``, ``-``.
NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._+-]*"
MAX_NAME_LENGTH = 128
NAME_ALPHABET = (
    f"a single folder name of at most {MAX_NAME_LENGTH} characters: ASCII letters, digits and . _ + - "
    "(starting with a letter or digit; no '/', '\\', spaces, '..' or absolute paths)"
)
_NAME = re.compile(NAME_PATTERN)

#: UTF-8 bytes of an id written as ``<id>.png`` (file systems allow 255 per name).
MAX_ID_BYTES = 250


def check_name(value: object, key: str) -> str:
    """``value`` if it is a safe name (:data:`NAME_PATTERN`); else :class:`ConfigError` naming ``key``, the value
    and the alphabet."""
    if isinstance(value, str) and len(value) <= MAX_NAME_LENGTH and _NAME.fullmatch(value):
        return value
    raise ConfigError(
        f"{key}={value!r} is not a valid name: it must be {NAME_ALPHABET}, e.g. {key}=my_model-v2. "
        f"It names a folder under the results folder, so it cannot be a path"
    )


def check_file_id(value: object, key: str) -> str:
    """``value`` if ``<value>.png`` is a single visible file name: not empty, no ``/``, ``\\``, NUL or other
    control character, not starting with ``.``, at most :data:`MAX_ID_BYTES` UTF-8 bytes. Anything a manifest
    id can usefully be (digits, ``_``, COCO-style names, unicode, spaces) passes."""
    why = None
    if not isinstance(value, str) or not value.strip():
        why = "it is empty" if isinstance(value, str) else f"it is a {type(value).__name__}, not a string"
    elif "/" in value or "\\" in value:
        why = "it contains a path separator ('/' or '\\')"
    elif any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in value):
        why = "it contains a control character (newline, tab, NUL, ...)"
    elif value.startswith("."):
        why = "it starts with '.' (a hidden file, never listed as a sample)"
    elif len(value.encode("utf-8")) > MAX_ID_BYTES:
        why = f"it is longer than {MAX_ID_BYTES} bytes (UTF-8), too long for a file name"
    if why is None:
        return str(value)
    raise ConfigError(
        f"{key}={value!r} cannot be an image file name ({why}); an id is written as <id>.png, so it must be a "
        "single file name: no '/', '\\' or control characters, not starting with '.'"
    )
