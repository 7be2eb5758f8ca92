"""Carrier integrations: seal the signing secrets that were stored in plain
text, and bind each integration to the carrier codes it may sign for.

Integrations that exist already keep signing for the carriers whose scans
are stored, so a deploy does not lock a working carrier out; an operator
narrows the list in the admin.
"""

import django.core.validators
from django.db import migrations, models

import portal.sealing


def seal_and_bind(apps, schema_editor):
    CarrierIntegration = apps.get_model("portal", "CarrierIntegration")
    CarrierScan = apps.get_model("orders", "CarrierScan")
    seen = sorted({code.strip().upper() for code in CarrierScan.objects.values_list("carrier", flat=True).distinct()})
    for integration in CarrierIntegration.objects.all():
        # The historical field is a plain TextField here: what is read is what is stored.
        if integration.secret and not portal.sealing.is_sealed(integration.secret):
            integration.secret = portal.sealing.seal(integration.secret)
        if not integration.carrier_codes:
            integration.carrier_codes = ", ".join(seen)
        integration.save(update_fields=["secret", "carrier_codes"])


def unseal(apps, schema_editor):
    CarrierIntegration = apps.get_model("portal", "CarrierIntegration")
    for integration in CarrierIntegration.objects.all():
        plain = portal.sealing.unseal(integration.secret) if integration.secret else None
        if plain is not None:
            integration.secret = plain
            integration.save(update_fields=["secret"])


class Migration(migrations.Migration):
    dependencies = [
        ("portal", "0001_initial"),
        ("orders", "0003_order_number_suffix_indexes"),
    ]

    operations = [
        migrations.AlterField(
            model_name="carrierintegration",
            name="secret",
            field=models.TextField(verbose_name="signing secret"),
        ),
        migrations.AddField(
            model_name="carrierintegration",
            name="carrier_codes",
            field=models.CharField(default="", max_length=200, verbose_name="carrier codes"),
            preserve_default=False,
        ),
        migrations.RunPython(seal_and_bind, unseal, elidable=False),
        migrations.AlterField(
            model_name="carrierintegration",
            name="secret",
            field=portal.sealing.SealedTextField(editable=False, verbose_name="signing secret"),
        ),
        migrations.AlterField(
            model_name="carrierintegration",
            name="carrier_codes",
            field=models.CharField(
                help_text="The carriers this integration may send scans for, separated by commas, e.g. “SF, YTO”.",
                max_length=200,
                validators=[
                    django.core.validators.RegexValidator(
                        "^\\s*[A-Za-z0-9_.-]+(\\s*,\\s*[A-Za-z0-9_.-]+)*\\s*$",
                        "List carrier codes (letters, digits, “-”, “_”, “.”) separated by commas.",
                    )
                ],
                verbose_name="carrier codes",
            ),
        ),
    ]
