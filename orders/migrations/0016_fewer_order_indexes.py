"""Indexes every step wrote and no query needs.

A step that moves an order writes a new entry into each index of the order
table. Three of them only doubled others:

- the single-column indexes Django gives the merchant and provider keys:
  ``order_merchant_state`` and ``order_provider_state`` lead with the same
  columns and serve every lookup they served. Only the indexes go; the
  foreign key constraints stay (altering the fields would drop and re-add
  them, re-checking every order under a lock);
- the ``LIKE 'prefix%'`` index PostgreSQL gets beside a ``unique=True``
  text column: no query asks an order number's prefix (searches go by its
  end, ``order_no_suffix``). The order number is unique by a constraint
  instead, which is one index.
"""

import django.core.validators
import django.db.models.deletion
from django.db import migrations, models

INDEXES = {"merchant": "orders_order_merchant_id_ab634f2d", "provider": "orders_order_provider_id_8c5b5fe6"}


def _party(kind):
    return models.ForeignKey(
        db_index=False,
        limit_choices_to={"kind": kind},
        on_delete=django.db.models.deletion.PROTECT,
        related_name=f"{kind}_orders",
        to="portal.organisation",
        verbose_name=kind,
    )


class Migration(migrations.Migration):
    dependencies = [
        ("orders", "0015_order_state_known"),
        ("portal", "0004_notification_summaries"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="order", name=kind, field=_party(kind)) for kind in INDEXES
            ],
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX "{name}" ON "orders_order" ("{kind}_id")',
                )
                for kind, name in INDEXES.items()
            ],
        ),
        migrations.AlterField(
            model_name="order",
            name="order_no",
            field=models.CharField(
                max_length=64,
                validators=[
                    django.core.validators.RegexValidator(
                        "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,63}$",
                        "Use 1 to 64 letters, digits, dots, dashes or underscores, not starting with a dot.",
                    )
                ],
                verbose_name="order number",
            ),
        ),
        migrations.AddConstraint(
            model_name="order",
            constraint=models.UniqueConstraint(fields=["order_no"], name="order_no_unique"),
        ),
    ]
