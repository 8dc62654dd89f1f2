"""A Mailer home folder with a lived-in outbox, made by really sending.

Used by the screenshot script and the start-up benchmark. Messages go
through the real outbox and runner to the built-in sandbox server on
127.0.0.1, with its fault switches producing failed and deferred messages,
so every transcript and explanation shown is one a real session produced.
Nothing leaves loopback: the second account points at a closed local port.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from mailer_gui.accounts.model import Account
from mailer_gui.accounts.store import AccountStore
from mailer_gui.message.addresses import parse_address
from mailer_gui.message.draft import Draft
from mailer_gui.outbox.runner import Runner
from mailer_gui.outbox.store import OutboxStore
from mailer_gui.outbox.submit import queue_draft
from mailer_gui.paths import AppPaths, ensure_private_dir, resolve_paths
from mailer_gui.sandbox.account import sandbox_account
from mailer_gui.sandbox.server import SandboxServer
from mailer_gui.smtp.auth import Credentials
from mailer_gui.smtp.settings import AuthMethod, Security

BODY = """Hi team,

Here is the **quarterly report** with the numbers we talked about:

| Region | Q3 | Q4 |
|--------|---:|---:|
| North  | 12 | 17 |
| South  |  9 | 14 |

- Revenue is *up 18%*
- The [dashboard](https://example.org/dash) has the details

```python
total = sum(region.q4 for region in regions)
```

Thanks,
Ann
"""


def _draft(sender: str, to: str, subject: str, body: str = BODY, **kw: object) -> Draft:
    return Draft(
        sender=parse_address(sender),
        to=(parse_address(to),),
        subject=subject,
        body=body,
        **kw,  # type: ignore[arg-type]
    )


def make_sample_home(home: Path, attachment: Path | None = None) -> AppPaths:
    """Fill ``home`` (empty or new) with accounts and messages in every state."""
    paths = resolve_paths(home)
    ensure_private_dir(paths.config_dir)
    ensure_private_dir(paths.data_dir)
    server = SandboxServer(paths.sandbox_dir / "Maildir", paths.sandbox_dir)
    server.start()
    try:
        sandbox = sandbox_account(server, secret_source="none")
        accounts = AccountStore(paths.accounts_file)
        accounts.add(sandbox, make_default=True)
        accounts.add(
            Account(
                name="work",
                email="ann@example.org",
                display_name="Ann Example",
                host="127.0.0.1",
                port=9,  # the discard port: closed here, so nothing is ever sent
                security=Security.STARTTLS,
                auth=AuthMethod.PLAIN,
                secret_source="none",
            )
        )
        store = OutboxStore(paths.database, paths.spool_dir)
        runner = Runner(
            store,
            lambda name: sandbox,
            credentials=lambda account: lambda: Credentials(server.username, server.password),
        )
        sender = "Mailer Sandbox <me@sandbox.test>"
        extra = {"attachments": (attachment,)} if attachment else {}
        for subject, to in (
            ("Quarterly report", "team@sandbox.test"),
            ("Lunch on Friday?", "bob@sandbox.test"),
            ("Slides for Monday", "carol@sandbox.test"),
        ):
            message = queue_draft(store, _draft(sender, to, subject, **extra), account="sandbox")
            runner.deliver_now(message=message)
        server.faults.reject_next_rcpt = "5xx"
        message = queue_draft(
            store, _draft(sender, "nobody@sandbox.test", "Invoice 2026-114"), account="sandbox"
        )
        runner.deliver_now(message=message)
        server.faults.reject_next_rcpt = "4xx"
        message = queue_draft(
            store, _draft(sender, "dave@sandbox.test", "Meeting notes"), account="sandbox"
        )
        runner.deliver_now(message=message)
        # Deferred: the next attempt is an hour away, so opening the app later
        # does not send it at once.
        with sqlite3.connect(paths.database) as db:
            db.execute("UPDATE messages SET due_at = ? WHERE id = ?", (time.time() + 3600, message))
        queue_draft(
            store,
            _draft("Ann Example <ann@example.org>", "eve@example.org", "Happy new year!"),
            account="work",
            due_at=time.time() + 30 * 86400,  # send later
        )
        store.close()
    finally:
        server.stop()
    return paths


if __name__ == "__main__":
    import sys

    made = make_sample_home(Path(sys.argv[1]))
    print(f"sample home in {made.data_dir.parent}")
