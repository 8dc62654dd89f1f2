"""Does the text promise an attachment? The composer's forgotten-attachment check.

Only what the writer wrote counts: quoted lines (``> ...``) and the signature
(below a ``-- `` line) are skipped, so a reply to "see attached" does not nag.
"""

from __future__ import annotations

import re

# English, German and French ways of saying "there is a file with this mail".
_MENTION = re.compile(
    r"\b(?:attached|attachments?|enclosed|I\s+attach|anbei|Anh[aä]nge?|"
    r"pi[eè]ces?\s+jointes?|ci-joints?)\b",
    re.IGNORECASE,
)
_SIGNATURE_LINE = "-- "


def attachment_mention(text: str) -> str | None:
    """The first word of ``text`` that speaks of an attachment, as written; else None.

    ``"Report attached."`` -> ``"attached"``; ``"> attached"`` -> None.
    """
    own: list[str] = []
    for line in text.splitlines():
        if line == _SIGNATURE_LINE:
            break
        if not line.lstrip().startswith(">"):
            own.append(line)
    match = _MENTION.search("\n".join(own))
    return match.group(0) if match else None


__all__ = ["attachment_mention"]
