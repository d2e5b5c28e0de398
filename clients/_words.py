"""The server's messages in the command line's words, and what to say of a stream not there.

The API names a stream's settings by their JSON fields (`latent_dims [1, 2, 3]`); a user of the
CLI typed flags (`--latent-dims 1,2,3`). `in_cli_words` rewrites a message that way:

- a setting's field at the start (`latent_dims: ...`, pydantic's `body.latent_dims.0: ...`) and
  any field with an underscore (`use latent_dims below 5`) becomes its flag;
- a field followed by a quoted value (`optimizer 'adam'`) becomes the flag and the value;
- a list of integers becomes a comma list, and an example list right after (`e.g. [1, 2]`)
  the flag with its value (`e.g. --latent-dims 1,2`).

Words that are not settings are left alone (`max_mc_samples`, a server limit, has no flag).
"""

import difflib
import re
from collections.abc import Sequence

from clients._parser import SETTING_NAMES

_FIELD = "|".join(sorted(SETTING_NAMES, key=len, reverse=True))
_LEADING = re.compile(rf"^(?:body\.)?({_FIELD})(?:\.\d+)*:")
_WITH_UNDERSCORE = re.compile(
    rf"(?<![\w.])(?:body\.)?({'|'.join(n for n in SETTING_NAMES if '_' in n)})(?:\.\d+)*\b"
)
_QUOTED_VALUE = re.compile(rf"(?<![\w.-])({_FIELD}) '([^']*)'")
_EXAMPLE = re.compile(r"\(e\.g\. \[(\d+(?:, \d+)*)\]\)")
_INT_LIST = re.compile(r"\[(\d+(?:, \d+)*)\]")


def flag(field: str) -> str:
    """The command-line flag of a stream setting: latent_dims -> --latent-dims."""
    return "--" + field.replace("_", "-")


def in_cli_words(message: str) -> str:
    """`message` with the API's field names and JSON lists as the CLI's flags and values."""
    leading = _LEADING.match(message)
    lead = flag(leading[1]) if leading else None
    if leading:
        message = f"{lead}:{message[leading.end() :]}"
    message = _QUOTED_VALUE.sub(lambda m: f"{flag(m[1])} {m[2]}", message)
    message = _WITH_UNDERSCORE.sub(lambda m: flag(m[1]), message)
    if lead is not None:
        message = _EXAMPLE.sub(lambda m: f"(e.g. {lead} {_commas(m[1])})", message)
    return _INT_LIST.sub(lambda m: _commas(m[1]), message)


def _commas(items: str) -> str:
    return items.replace(", ", ",")


def no_such_stream(name: str, names: Sequence[str], url: str) -> str:
    """What to say when stream `name` is not at `url`, whose streams are `names`."""
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    if close:
        return f"no stream {name!r} at {url}: did you mean {' or '.join(map(repr, close))}?"
    if not names:
        return f"no stream {name!r} at {url}: it has no streams yet"
    return f"no stream {name!r} at {url}: `dimwatch status` lists its {len(names):,} streams"
