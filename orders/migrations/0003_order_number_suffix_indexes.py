"""Indexes for finding an order by the end of one of its numbers (PostgreSQL only).

``orders.filtersets.search`` compares reverse(upper(column)) with the reversed,
upper-cased value: a suffix of the number becomes a prefix of the indexed
expression, which a btree with text_pattern_ops answers with a range scan
whatever the database's collation. SQLite runs the same query without them.
"""

from django.db import migrations

INDEXES = {
    "order_no_suffix": "order_no",
    "order_trade_no_suffix": "trade_no",
    "order_inbound_no_suffix": "inbound_tracking_no",
    "order_waybill_suffix": "waybill_no",
}


def create_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, column in INDEXES.items():
        schema_editor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON orders_order (reverse(upper({column})) text_pattern_ops)"
        )


def drop_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0002_initial"),
    ]

    operations = [
        migrations.RunPython(create_indexes, drop_indexes, elidable=False),
    ]
