import json
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from portal import demo, notify
from risks.sweep import run_sweep


class Command(BaseCommand):
    help = "Create or refresh the demo organisations, logins and orders (idempotent), then run a risk sweep."

    def add_arguments(self, parser):
        parser.add_argument(
            "--orders", type=int, default=300, help="how many demo orders of the present (default 300; 0 for none)"
        )
        parser.add_argument(
            "--history-days",
            type=int,
            default=demo.HISTORY_DAYS,
            help=(
                f"days of finished orders before now, {demo.HISTORY_ORDERS_PER_PROVIDER} per provider, for the "
                f"forecasts and replays (default {demo.HISTORY_DAYS}; 0 for none; none with --orders 0)"
            ),
        )
        parser.add_argument("--credentials", type=Path, help="write the logins and keys to this file as JSON")

    def handle(self, *args, orders, history_days, credentials, **options):
        if orders < 0:
            raise CommandError("--orders must be 0 or more")
        # The history's last orders were paid a deadline and a day before now.
        shortest = demo.DEADLINE_AFTER_PAYMENT.days + 2
        if history_days and history_days < shortest:
            raise CommandError(f"--history-days must be 0 or at least {shortest}")
        try:
            secret = demo.demo_secret()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        with transaction.atomic():
            logins = demo.seed_people()
            keys = demo.seed_keys(secret)
            carrier_secret = demo.seed_carrier(secret)
        now = timezone.now()
        with demo.bulk_mode():
            past = demo.seed_history(now=now, days=history_days) if orders and history_days else 0
            created = demo.seed_orders(orders, now=now) if orders else 0
            # Without it the cases, escalations and inbox stay empty until
            # beat's first sweep, minutes after a newcomer first looks.
            summary = run_sweep()
        notify.kick()
        data = {"users": logins, "api_keys": keys, "carrier_webhook_secret": carrier_secret}
        if credentials:
            credentials.parent.mkdir(parents=True, exist_ok=True)
            credentials.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        self.stdout.write(f"Demo data ready: {created} new orders ({orders} asked for).")
        if orders and history_days:
            self.stdout.write(f"History: {past} new finished orders over the last {history_days} days.")
        self.stdout.write(f"Risk sweep: {summary.line()}.")
        self.stdout.write("Logins (username / password, organisation):")
        for login in logins:
            self.stdout.write(
                f"  {login['username']:<14} {login['password']:<26} {login['organisation']} ({login['kind']})"
            )
        self.stdout.write("API keys (Authorization: Token <key>):")
        for code, key in keys.items():
            self.stdout.write(f"  {code:<14} {key}")
        self.stdout.write(f"Carrier webhook secret: {carrier_secret}")
        shown = "the default" if secret == demo.DEFAULT_DEMO_SECRET else "from the environment"
        self.stdout.write(f"The keys and the webhook secret derive from DEMO_SECRET={secret} ({shown}).")
        if credentials:
            self.stdout.write(f"Written to {credentials}")
