"""Build mailer_gui/resources/providers.json from the reference providers.tsv.

The JSON is committed (the app never reads the TSV); this script says where it
came from and how to rebuild it:

    python3 resources/make_providers.py [path/to/providers.tsv] [path/to/providers.json]

Defaults: ../shared/reference/providers.tsv (next to the repository) and
mailer_gui/resources/providers.json (inside the package, so a wheel or a frozen
app carries it). Every TSV row is kept: rows with the same domain list become
one provider with several servers, in the TSV's order. What the TSV lacks is
added here, by hand, and only here: provider names, the MX host suffixes of the
large hosted-mail providers (a custom domain hosted by Google gets Gmail's
settings), advice notes, and Fastmail's own domains.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_TSV = HERE.parent.parent / "shared" / "reference" / "providers.tsv"
DEFAULT_JSON = HERE.parent / "mailer_gui" / "resources" / "providers.json"

# Keyed by the first domain of a TSV row's domain list.
EXTRAS: dict[str, dict[str, Any]] = {
    "gmail.com": {
        "name": "Google",
        "mx_suffixes": ["aspmx.l.google.com", "google.com", "googlemail.com"],
        "notes": ["Gmail needs an app password (2-step verification) or OAuth2."],
    },
    "hotmail.com": {
        "name": "Outlook.com",
        "mx_suffixes": ["olc.protection.outlook.com"],
        "notes": ["Outlook.com accepts only OAuth2 since September 2024."],
    },
    "office365.com": {
        "name": "Microsoft 365",
        "mx_suffixes": ["mail.protection.outlook.com"],
        "notes": ["Microsoft 365: SMTP AUTH must be enabled for the mailbox; OAuth2."],
    },
    "yahoo.com": {
        "name": "Yahoo",
        "mx_suffixes": ["yahoodns.net"],
        "notes": ["Yahoo needs an app password."],
    },
    "aol.com": {
        "name": "AOL",
        "mx_suffixes": ["mail.gm0.yahoodns.net"],
        "notes": ["AOL needs an app password."],
    },
    "mac.com": {
        "name": "iCloud",
        "mx_suffixes": ["mail.icloud.com"],
        "notes": ["iCloud needs an app-specific password, with the full address as user name."],
    },
    "messagingengine.com": {
        "name": "Fastmail",
        "extra_domains": ["fastmail.com", "fastmail.fm"],
        "mx_suffixes": ["messagingengine.com"],
        "notes": ["Fastmail needs an app password."],
    },
    "gmx.net": {
        "name": "GMX",
        "mx_suffixes": ["gmx.net"],
        "notes": ["GMX: allow POP3/IMAP access in the web mail settings first."],
    },
    "gmx.com": {
        "name": "GMX",
        "mx_suffixes": ["gmx.com"],
        "notes": ["GMX: allow POP3/IMAP access in the web mail settings first."],
    },
    "web.de": {
        "name": "WEB.DE",
        "mx_suffixes": ["web.de"],
        "notes": ["WEB.DE: allow POP3/IMAP access in the web mail settings first."],
    },
    "mail.com": {"name": "mail.com", "mx_suffixes": ["mail.com"]},
    "yandex.ru": {
        "name": "Yandex",
        "mx_suffixes": ["yandex.net", "yandex.ru"],
        "notes": ["Yandex needs an app password."],
    },
    "mail.ru": {
        "name": "Mail.ru",
        "mx_suffixes": ["mail.ru"],
        "notes": ["Mail.ru needs a password for external applications."],
    },
    "online.de": {"name": "1&1", "mx_suffixes": ["kundenserver.de"]},
    "ameritech.net": {"name": "AT&T"},
}
_ZOHO_NOTE = "Zoho needs an app-specific password when two-factor authentication is on."
for _zoho, _mx in {
    "zoho.com": ["zoho.com", "zohomail.com"],
    "zoho.eu": ["zoho.eu"],
    "zoho.in": ["zoho.in"],
    "zoho.com.au": ["zoho.com.au"],
    "zoho.jp": ["zoho.jp"],
    "zohocloud.ca": ["zohocloud.ca"],
}.items():
    EXTRAS[_zoho] = {"name": "Zoho", "mx_suffixes": _mx, "notes": [_ZOHO_NOTE]}


def build(tsv_path: Path) -> dict[str, Any]:
    with tsv_path.open(encoding="utf-8", newline="") as tsv:
        rows = list(csv.DictReader(tsv, delimiter="\t"))
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = row["domains"].strip()
        domains = [d.strip().lower() for d in key.split(",") if d.strip()]
        provider = groups.get(key)
        if provider is None:
            extra = EXTRAS.get(domains[0], {})
            provider = groups[key] = {
                "name": extra.get("name", domains[0]),
                "domains": domains + list(extra.get("extra_domains", [])),
                "servers": [],
                "mx_suffixes": list(extra.get("mx_suffixes", [])),
                "notes": list(extra.get("notes", [])),
            }
        provider["servers"].append(
            {
                "hostname": row["smtp_host"].strip().lower(),
                "port": int(row["port"]),
                "socket_type": row["socket_type"].strip(),
                "authentication": [a for a in row["authentication"].split("/") if a],
                "username": row["username"].strip(),
            }
        )
    used = {p["domains"][0] for p in groups.values()}
    missing = sorted(set(EXTRAS) - used)
    if missing:
        raise SystemExit(f"extras for domains no TSV row starts with: {missing}")
    return {
        "about": (
            "Outgoing (SMTP) servers by mail domain. Generated by resources/make_providers.py "
            "from shared/reference/providers.tsv; edit the script, not this file."
        ),
        "rows": len(rows),
        "providers": list(groups.values()),
    }


def main(argv: list[str]) -> int:
    tsv_path = Path(argv[1]) if len(argv) > 1 else DEFAULT_TSV
    json_path = Path(argv[2]) if len(argv) > 2 else DEFAULT_JSON
    data = build(tsv_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=1, ensure_ascii=False) + "\n"
    json_path.write_text(text, encoding="utf-8")
    print(f"{json_path}: {len(data['providers'])} providers from {data['rows']} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
