"""Orders hold only the states the workflow knows (``order_state_known``).

On PostgreSQL the check is added NOT VALID (a moment's lock, no scan) and
then validated in its own statement, which reads the table without holding
writes back; elsewhere it is added as Django adds it.
"""

from django.db import migrations, models

STATES = [
    "awaiting_shipment",
    "inbound",
    "arrived",
    "signed_in",
    "appraised",
    "inspected",
    "packed",
    "waybill_printed",
    "outbound",
    "delivered",
    "completed",
    "returned",
    "refunded",
    "auto_refunded",
]


class AddCheckOnline(migrations.AddConstraint):
    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor != "postgresql":
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        table = schema_editor.quote_name(model._meta.db_table)
        name = schema_editor.quote_name(self.constraint.name)
        schema_editor.execute(f"{self.constraint.create_sql(model, schema_editor)} NOT VALID")
        schema_editor.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")


class Migration(migrations.Migration):
    # The two statements each commit on their own: validating inside the
    # adding statement's transaction would keep its lock through the scan.
    atomic = False

    dependencies = [
        ("orders", "0014_open_orders_as_not_finished"),
    ]

    operations = [
        AddCheckOnline(
            model_name="order",
            constraint=models.CheckConstraint(condition=models.Q(("state__in", STATES)), name="order_state_known"),
        ),
    ]
