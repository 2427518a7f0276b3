"""What a notification says: Jinja2 templates per event type, text for the app and email, HTML.

Per event type `<type>`, templates/ holds `<type>.subject.txt` (title and email subject,
rendered without the user's name), `<type>.txt` (the in-app body, wrapped by `_email.txt`
for the email's text part unless `<type>.email.txt` gives the mail its own) and
`<type>.html` (the email's HTML part, extending `_layout.html`). Autoescaping is on for
`.html` only: a name like `<script>` is data from another service, never markup.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES_DIR = Path(__file__).parent / "templates"
MAX_TITLE_CHARS = 200

# ISO 4217 minor units where they are not 2; everything else has cents.
_MINOR_UNITS = {
    **dict.fromkeys(
        "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF".split(), 0
    ),
    **dict.fromkeys("BHD IQD JOD KWD LYD OMR TND".split(), 3),
}


@dataclass(frozen=True)
class Rendered:
    """A notification's words on every channel."""

    title: str
    body: str
    email_text: str
    email_html: str


@functools.cache
def _environment() -> jinja2.Environment:
    # Built on first use, not at import: nothing touches the file system before it is needed.
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def format_money(amount_minor: int, currency: str) -> str:
    """Integer minor units as text: 1234 EUR -> "12.34 EUR", 500 JPY -> "500 JPY"."""
    digits = _MINOR_UNITS.get(currency.upper(), 2)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**digits)
    amount = f"{whole:,}" + (f".{fraction:0{digits}d}" if digits else "")
    return f"{sign}{amount} {currency.upper()}"


def template_context(event_type: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The variables the templates of `event_type` use, from the event's (validated) data."""
    if event_type == "user.verification_requested":
        expires_at = data["expires_at"]
        return {
            "email": data["email"],
            "verify_url": data["verify_url"],
            "expires_at": expires_at.strftime("%Y-%m-%d %H:%M UTC")
            if hasattr(expires_at, "strftime")
            else str(expires_at),
        }
    if event_type.startswith("user."):
        # The data's own fields, so a new user event needs its templates and nothing here;
        # never the name, which `render` gives the body only (it must not reach a subject).
        return {key: value for key, value in data.items() if key != "name"}
    order_ref = str(data["order_id"])[:8]
    if event_type == "order.created":
        currency = str(data["currency"])
        return {
            "order_ref": order_ref,
            "status": data["status"],
            "total": format_money(int(data["total_cents"]), currency),
            "items": [
                {
                    "sku": item["sku"],
                    "quantity": item["quantity"],
                    "unit_price": format_money(int(item["unit_price_cents"]), currency),
                }
                for item in data["items"]
            ],
        }
    if event_type == "order.status_changed":
        return {"order_ref": order_ref, "old_status": data["from"], "new_status": data["to"]}
    return {**data, "order_ref": order_ref}


def render(event_type: str, data: Mapping[str, Any], *, name: str | None) -> Rendered:
    """Title, in-app body, and the email's text and HTML parts for one event."""
    env = _environment()
    data_context = template_context(event_type, data)
    context = {**data_context, "name": name}
    # The subject never sees the name: a subject template naming it fails loudly, so a
    # user's name cannot end up in a mail header.
    subject = env.get_template(f"{event_type}.subject.txt").render(data_context)
    # One line, whatever the data held: it becomes an email header.
    title = " ".join(subject.split())[:MAX_TITLE_CHARS]
    body = env.get_template(f"{event_type}.txt").render(context).strip()
    try:
        # A mail-only text (the verification link) when the in-app body must not hold it.
        email_body = env.get_template(f"{event_type}.email.txt").render(context).strip()
    except jinja2.TemplateNotFound:
        email_body = body
    return Rendered(
        title=title,
        body=body,
        email_text=env.get_template("_email.txt").render(name=name, body=email_body),
        email_html=env.get_template(f"{event_type}.html").render({**context, "title": title}),
    )
