"""`/davinci <command>` lines in pull-request comments: parsing and the texts the bot replies with.

Only authors whose association is OWNER, MEMBER or COLLABORATOR are heard; comments from anyone
else, and from any bot, are ignored without a reply, so the bot cannot be made to talk by
strangers or by itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TRUSTED_ASSOCIATIONS = frozenset({"OWNER", "MEMBER", "COLLABORATOR"})
COMMANDS = ("status", "rollout", "ignore", "help")
_LINE = re.compile(r"^\s*/davinci(?=\s|$)(?:\s+(?P<command>[A-Za-z-]+))?\s*(?P<rest>.*)$", re.M)
REPLY_MARKER = "<!-- davinci-agency:reply comment={comment_id} -->"

HELP = """\
**daVinci-Agency commands** (for owners, members and collaborators of this repository):

| command | what it does |
|---|---|
| `/davinci status` | refresh the status comment of this pull request |
| `/davinci rollout` | run a rollout of this pull request's chain now |
| `/davinci ignore` | leave this pull request out of chains from now on |
| `/davinci help` | show this table |

Comments from other people and from bots are ignored."""


@dataclass(frozen=True)
class Command:
    name: str
    """One of COMMANDS, or `unknown`."""
    word: str
    """What the author typed after `/davinci`."""


def parse(body: str | None) -> Command | None:
    """The first `/davinci` line of a comment, or None when there is none."""
    if not body:
        return None
    match = _LINE.search(body)
    if match is None:
        return None
    word = (match.group("command") or "help").lower()
    return Command(word if word in COMMANDS else "unknown", word)


def is_trusted(association: str | None, sender_type: str | None) -> bool:
    return sender_type != "Bot" and (association or "").upper() in TRUSTED_ASSOCIATIONS


def reply_marker(comment_id: int) -> str:
    return REPLY_MARKER.format(comment_id=comment_id)


def unknown_reply(word: str) -> str:
    safe = re.sub(r"[^a-z-]", "", word.lower())[:30]
    return f"`/davinci {safe}` is not a command I know.\n\n{HELP}"
