"""What a notification says: Jinja2 templates per event type, text for the app and email, HTML.

Per event type `<type>`, templates/ holds `<type>.subject.txt` (title and email subject),
`<type>.txt` (the in-app body, wrapped by `_email.txt` for the email's text part) and
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
    if event_type.startswith("user."):
        # The data's own fields: a new user event needs its templates and nothing here.
        return dict(data)
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
    context = {**template_context(event_type, data), "name": name}
    subject = env.get_template(f"{event_type}.subject.txt").render(context)
    # One line, whatever the data held: it becomes an email header.
    title = " ".join(subject.split())[:MAX_TITLE_CHARS]
    body = env.get_template(f"{event_type}.txt").render(context).strip()
    return Rendered(
        title=title,
        body=body,
        email_text=env.get_template("_email.txt").render(name=name, body=body),
        email_html=env.get_template(f"{event_type}.html").render({**context, "title": title}),
    )
