from django.core.management.base import BaseCommand

from risks import sweep
from risks.choices import Rule


class Command(BaseCommand):
    help = "Run one risk sweep now and print what it opened, resolved and escalated."

    def handle(self, *args, **options):
        summary = sweep.run_sweep()
        self.stdout.write(f"Sweep done: {summary.line()}.")
        for title, counts in (("opened", summary.opened), ("resolved", summary.resolved)):
            for rule, n in sorted(counts.items()):
                self.stdout.write(f"  {title:<9} {n:>6}  {rule} ({Rule(rule).label})")
