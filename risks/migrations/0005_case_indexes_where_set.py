# Cases and their events are written by the thousand; the indexes of their
# foreign keys to who resolved or acted cover only the rows where one is set,
# and a case's order is found through case_order_status. The foreign keys
# themselves stay as they are: only the indexes change.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Django's own indexes of these foreign keys: (table, column, name).
FOREIGN_KEY_INDEXES = [
    ("risks_caseevent", "actor_organisation_id", "risks_caseevent_actor_organisation_id_7c162b56"),
    ("risks_caseevent", "actor_user_id", "risks_caseevent_actor_user_id_4f4ccd84"),
    ("risks_riskcase", "order_id", "risks_riskcase_order_id_982cc80a"),
    ("risks_riskcase", "resolved_by_id", "risks_riskcase_resolved_by_id_b73e17e0"),
]


class Migration(migrations.Migration):

    dependencies = [
        ('orders', '0008_order_kept_unshipped_index'),
        ('portal', '0004_notification_summaries'),
        ('risks', '0004_escalation_entry_code_and_params'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f'DROP INDEX IF EXISTS "{name}"',
                    reverse_sql=f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" ("{column}")',
                )
                for table, column, name in FOREIGN_KEY_INDEXES
            ],
            state_operations=[
                migrations.AlterField(
                    model_name='caseevent',
                    name='actor_organisation',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to='portal.organisation'),
                ),
                migrations.AlterField(
                    model_name='caseevent',
                    name='actor_user',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
                migrations.AlterField(
                    model_name='riskcase',
                    name='order',
                    field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT, related_name='cases', to='orders.order', verbose_name='order'),
                ),
                migrations.AlterField(
                    model_name='riskcase',
                    name='resolved_by',
                    field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT, related_name='+', to=settings.AUTH_USER_MODEL),
                ),
            ],
        ),
        migrations.AddIndex(
            model_name='caseevent',
            index=models.Index(condition=models.Q(('actor_user__isnull', False)), fields=['actor_user'], name='case_event_actor_user'),
        ),
        migrations.AddIndex(
            model_name='caseevent',
            index=models.Index(condition=models.Q(('actor_organisation__isnull', False)), fields=['actor_organisation'], name='case_event_actor_organisation'),
        ),
        migrations.AddIndex(
            model_name='riskcase',
            index=models.Index(condition=models.Q(('resolved_by__isnull', False)), fields=['resolved_by'], name='case_resolved_by'),
        ),
    ]
