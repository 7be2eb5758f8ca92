"""Thread lines as a code and parameters, put into words when read.

Lines written before keep their stored text. An old "assigned" line held the
assignee's username and nothing else, so it becomes a coded line and reads in
each reader's language too."""

from django.db import migrations, models


def code_old_assignments(apps, schema_editor):
    entries = apps.get_model("risks", "EscalationEntry")
    old = list(entries.objects.filter(kind="assigned", code="").exclude(body="").only("pk", "body"))
    for entry in old:
        entry.code = "assigned"
        entry.params = {"assignee": entry.body}
    entries.objects.bulk_update(old, ["code", "params"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [
        ("risks", "0003_drop_unused_note_and_reminder_kinds"),
    ]

    operations = [
        migrations.AlterField(
            model_name="escalationentry",
            name="kind",
            field=models.CharField(
                choices=[
                    ("comment", "Comment"),
                    ("internal", "Internal note"),
                    ("assigned", "Assigned"),
                    ("action", "Action on the order"),
                    ("resolved", "Resolved"),
                    ("rejected", "Rejected"),
                    ("raised", "Raised"),
                ],
                max_length=16,
                verbose_name="kind",
            ),
        ),
        migrations.AddField(
            model_name="escalationentry",
            name="code",
            field=models.CharField(
                blank=True,
                choices=[
                    ("assigned", "Assigned"),
                    ("status", "Status changed"),
                    ("order_action", "Action on the order"),
                    ("raised_by_rule", "Raised by a rule"),
                ],
                max_length=24,
                verbose_name="what happened",
            ),
        ),
        migrations.AddField(
            model_name="escalationentry",
            name="params",
            field=models.JSONField(blank=True, default=dict, verbose_name="parameters"),
        ),
        migrations.RunPython(code_old_assignments, migrations.RunPython.noop),
    ]
