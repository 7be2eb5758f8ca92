# The evidence of a case is looked up only among the cases a person resolved
# (the sweep does not open them again), so only those are indexed by it.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('risks', '0005_case_indexes_where_set'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='riskcase',
            name='case_evidence',
        ),
        migrations.AddIndex(
            model_name='riskcase',
            index=models.Index(condition=models.Q(('resolution', 'by_owner'), ('status', 'resolved')), fields=['rule', 'subject', 'fingerprint'], name='case_resolved_evidence'),
        ),
    ]
