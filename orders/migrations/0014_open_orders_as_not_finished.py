"""The seven indexes over open orders rebuilt with open said as "in none of
the terminal states" (``orders.models.OPEN_ORDERS``).

Each is built beside the old one under a passing name, the old one dropped,
and the new one given the old name. On PostgreSQL the building and the
dropping are CONCURRENTLY: the order table stays open to reads and writes
while each new index is built, and no query is ever without one of the two;
elsewhere they are plain.
"""

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models

FINISHED = ["auto_refunded", "completed", "refunded", "returned"]
OPEN_ORDERS = models.Q(("state__in", FINISHED), _negated=True)
INDEXES = {
    "order_provider_open": ["provider", "auto_confirm_at", "id"],
    "order_merchant_open": ["merchant", "auto_confirm_at", "id"],
    "order_provider_work": ["provider", "state", "flow_blocked", "appraisal_result", "inbound_delivered_at"],
    "order_open_deadline": ["auto_confirm_at"],
    "order_open_state_age": ["state", "state_changed_at"],
    "order_open_split_group": ["trade_no", "sku"],
    "order_open_board": ["auto_confirm_at", "provider", "state", "state_changed_at", "amount", "merchant"],
}


def _online(concurrently, plain):
    class Online(concurrently):
        """``concurrently`` on PostgreSQL, ``plain`` elsewhere."""

        def database_forwards(self, app_label, schema_editor, from_state, to_state):
            chosen = concurrently if schema_editor.connection.vendor == "postgresql" else plain
            return chosen.database_forwards(self, app_label, schema_editor, from_state, to_state)

        def database_backwards(self, app_label, schema_editor, from_state, to_state):
            chosen = concurrently if schema_editor.connection.vendor == "postgresql" else plain
            return chosen.database_backwards(self, app_label, schema_editor, from_state, to_state)

    return Online


AddIndexOnline = _online(AddIndexConcurrently, migrations.AddIndex)
RemoveIndexOnline = _online(RemoveIndexConcurrently, migrations.RemoveIndex)


def _rebuilt(name, fields):
    passing = f"{name[:26]}_new"
    return [
        AddIndexOnline(model_name="order", index=models.Index(condition=OPEN_ORDERS, fields=fields, name=passing)),
        RemoveIndexOnline(model_name="order", name=name),
        migrations.RenameIndex(model_name="order", new_name=name, old_name=passing),
    ]


class Migration(migrations.Migration):
    # CREATE and DROP INDEX CONCURRENTLY cannot run inside a transaction.
    atomic = False

    dependencies = [
        ("orders", "0013_list_and_sweep_indexes"),
        ("portal", "0004_notification_summaries"),
    ]

    operations = [operation for name, fields in INDEXES.items() for operation in _rebuilt(name, fields)]
