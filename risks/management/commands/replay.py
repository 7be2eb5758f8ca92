import csv
import datetime
import json
import sys
import tomllib
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, no_translations
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
from tqdm import tqdm

from risks import replay
from risks.choices import Rule
from risks.models import ReplayRun


def _moment(text, *, end_of_day=False) -> datetime.datetime:
    """A date (its midnight, Asia/Shanghai; the next midnight for ``end_of_day``) or a date and time."""
    day = parse_date(text)
    if day is not None:
        if end_of_day:
            day += datetime.timedelta(days=1)
        return timezone.make_aware(datetime.datetime.combine(day, datetime.time()))
    try:
        moment = parse_datetime(text)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"{text!r} is not a date (2026-11-01) or a date and time (2026-11-01T08:00)")
    return moment if timezone.is_aware(moment) else timezone.make_aware(moment)


def _changes(path) -> dict:
    """The thresholds a file changes: a TOML or JSON table of names and whole numbers."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise CommandError(f"cannot read {path}: {error.strerror}") from error
    try:
        found = json.loads(text) if path.endswith(".json") else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise CommandError(f"{path} is not valid {'JSON' if path.endswith('.json') else 'TOML'}: {error}") from error
    if not isinstance(found, dict):
        raise CommandError(f"{path} must hold a table of threshold names and values")
    return found


def _hours(value) -> str:
    return "—" if value is None else f"{value:,.1f}"


def _share(value) -> str:
    return "—" if value is None else f"{value:.0%}"


class Command(BaseCommand):
    help = (
        "Replay the risk rules hour by hour over recorded order events, with the thresholds in force or those a "
        "file changes, and report for every loss (auto-refund, duplicate fee) when a rule first caught it and "
        "how long before its deadline, and the cases raised on orders that finished well. Writes nothing to "
        "the live cases; the findings are kept for the platform's Replay page."
    )

    def add_arguments(self, parser):
        parser.add_argument("--from", dest="start", required=True, help="first day (Asia/Shanghai), or a date and time")
        parser.add_argument("--to", dest="end", required=True, help="last day, included, or a date and time")
        # ``manage.py replay --settings FILE`` arrives here as --thresholds (see manage.py).
        parser.add_argument(
            "--thresholds",
            help="a TOML or JSON file of thresholds to change, e.g. sla_appraised_hours = 12 (also: --settings FILE)",
        )
        parser.add_argument("--csv", help="write the losses, one row each, to this CSV file ('-' for the output)")

    # The command speaks English, its table and CSV headings too, whatever the portal's language.
    @no_translations
    def handle(self, *args, start, end, thresholds, csv, **options):
        start, end = _moment(start), _moment(end, end_of_day=True)
        now = timezone.now()
        if end > now:
            end = now
        if end <= start:
            raise CommandError("--to must come after --from, and --from before now")
        try:
            cfg, changed = replay.thresholds(_changes(thresholds) if thresholds else {})
        except ValidationError as refused:
            raise CommandError(" ".join(refused.messages)) from refused
        hours = int((end - start).total_seconds() // 3600) + 1
        bar = tqdm(total=hours, unit="h", disable=not sys.stderr.isatty(), file=sys.stderr)
        found = replay.replay(start, end, cfg, progress=lambda done: bar.update(1))
        bar.close()
        run = ReplayRun.objects.create(
            period_start=start,
            period_end=end,
            thresholds=changed,
            orders=found.orders,
            hours=found.hours,
            seconds=found.seconds,
            report=found.as_json(),
        )
        self._table(run)
        if csv:
            self._csv(run, csv)

    def _table(self, run):
        report = run.report
        local = timezone.localtime
        self.stdout.write(
            f"Replay {local(run.period_start):%Y-%m-%d %H:%M} → {local(run.period_end):%Y-%m-%d %H:%M}: "
            f"{run.orders:,} orders, {run.hours:,} hours, {run.seconds:,.1f} s"
            + (f", thresholds changed: {run.thresholds}" if run.thresholds else ", thresholds in force")
        )
        self.stdout.write(f"{'rule':<44}{'cases':>8}{'false alarms':>14}{'caught first':>14}{'median lead h':>15}")
        for row in report["rules"]:
            self.stdout.write(
                f"{Rule(row['rule']).label:<44}{row['opened']:>8,}{row['false_alarms']:>14,}"
                f"{row['caught_first']:>14,}{_hours(row['median_lead_hours']):>15}"
            )
        headline = report["headline"]
        self.stdout.write(
            f"Losses: {headline['losses']:,}, caught before the deadline: {headline['caught']:,}. "
            f"Caught at least 24 h before the deadline: {_share(headline['share_24h'])} "
            f"(without forecast_miss: {_share(headline['share_24h_without_forecast'])})."
        )
        self.stdout.write(f"Kept as replay {run.pk}.")

    def _csv(self, run, path):
        out = self.stdout if path == "-" else open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        try:
            writer = csv.writer(out)
            writer.writerow([str(label) for _key, label in replay.LOSS_COLUMNS])
            for loss in run.report["losses"]:
                writer.writerow(["" if loss[key] is None else loss[key] for key, _label in replay.LOSS_COLUMNS])
        finally:
            if out is not self.stdout:
                out.close()
