"""`flask` commands of the orders service: seeding the catalogue for a local run."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import with_appcontext

from services.orders import catalogue
from services.orders.catalogue import NewProduct
from services.orders.models import db

# What `make run` starts with, so the README's walk-through can order without an admin.
# The USD one shows the currency check: an EUR order naming it is refused.
DEMO_PRODUCTS = (
    NewProduct(sku="BOOK-1", name="Flask Web Development", unit_price_cents=1250, currency="EUR"),
    NewProduct(sku="PEN-7", name="Fountain pen", unit_price_cents=199, currency="EUR"),
    NewProduct(sku="MUG-3", name="Coffee mug", unit_price_cents=899, currency="EUR"),
    NewProduct(sku="LAPTOP-14", name="14-inch laptop", unit_price_cents=129900, currency="EUR"),
    NewProduct(sku="CABLE-2", name="USB-C cable", unit_price_cents=1499, currency="USD"),
)


@click.command("seed-products")
@with_appcontext
def seed_products() -> None:
    """Add the demo products whose SKU is missing; products already there stay as they are."""
    session = db.session()
    try:
        added = catalogue.seed_products(session=session, products=DEMO_PRODUCTS)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    click.echo(f"catalogue: {added} of {len(DEMO_PRODUCTS)} demo products added")


def init_app(app: Flask) -> None:
    """Register the commands on the app's `flask` CLI."""
    app.cli.add_command(seed_products)
