from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import translation
from tqdm import tqdm

from orders import imports
from orders.choices import ImportStatus
from orders.models import ImportJob
from portal.choices import OrganisationKind
from portal.exports import download
from portal.models import Organisation

SHOWN_REFUSALS = 50


class Command(BaseCommand):
    help = (
        "Import orders from a CSV (UTF-8 with or without a BOM, or GB18030) or XLSX file whose columns are the "
        "order-create API's fields or their labels. Rows already imported are left unchanged; refused rows are "
        "listed with their row, column and reason, and the exit status is 1 when any row was refused."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", nargs="?", help="the CSV or XLSX file")
        parser.add_argument(
            "--as", dest="organisation", help="the code of the organisation importing (default: the platform)"
        )
        parser.add_argument("--refused", help="write the refused rows to this file, in the format of the import")
        parser.add_argument(
            "--language",
            default=settings.LANGUAGE_CODE,
            choices=[code for code, _name in settings.LANGUAGES],
            help="the language of the refusals (default: %(default)s)",
        )
        parser.add_argument("--resume", type=int, metavar="JOB", help="finish the import JOB that was interrupted")

    def handle(self, *args, **options):
        with translation.override(options["language"]):
            job = self._job(options)
            bar = tqdm(total=job.total, initial=job.done, unit=" rows", disable=None, file=self.stderr._out)
            shown = {"done": job.done}

            def progress(current):
                bar.update(current.done - shown["done"])
                shown["done"] = current.done
                bar.set_postfix(created=current.created, unchanged=current.unchanged, refused=current.refused)

            try:
                finished = imports.run(job.pk, progress=progress)
            except KeyboardInterrupt:
                raise CommandError(
                    f"Interrupted. The rows done are kept; finish with: manage.py import_orders --resume {job.pk}"
                ) from None
            finally:
                bar.close()
            if finished is None:
                raise CommandError(f"Import {job.pk} is finished or being run by a worker right now.")
            self._report(finished, options["refused"])

    def _job(self, options) -> ImportJob:
        if options["resume"]:
            job = ImportJob.objects.defer("content").filter(pk=options["resume"]).first()
            if job is None:
                raise CommandError(f"There is no import {options['resume']}.")
            return job
        if not options["file"]:
            raise CommandError("Name the file to import (or --resume JOB).")
        path = Path(options["file"])
        if not path.is_file():
            raise CommandError(f"{path} is not a file.")
        if options["organisation"]:
            organisation = Organisation.objects.filter(code=options["organisation"], is_active=True).first()
        else:
            organisation = Organisation.objects.filter(kind=OrganisationKind.PLATFORM, is_active=True).first()
        if organisation is None:
            raise CommandError("No active organisation to import as; run seed_demo or pass --as CODE.")
        if path.stat().st_size > settings.IMPORT_MAX_BYTES:
            raise CommandError(imports.too_big(path.stat().st_size))
        try:
            job = imports.start(path.read_bytes(), path.name, organisation=organisation, language=options["language"])
        except imports.FileRefused as refusal:
            raise CommandError(f"{path.name}: {refusal}") from None
        job.content = b""  # kept in the database; the import reads it from there
        return job

    def _report(self, job: ImportJob, refused_file):
        if job.status == ImportStatus.FAILED:
            raise CommandError(f"{job.file_name}: {job.failure}")
        self.stdout.write(
            f"{job.file_name}: {job.done} rows — {job.created} created, {job.unchanged} unchanged (already there), "
            f"{job.refused} refused."
        )
        for refusal in job.refusals.order_by("row")[:SHOWN_REFUSALS]:
            column = f" {refusal.column}:" if refusal.column else ""
            self.stdout.write(f"  row {refusal.row}:{column} {refusal.reason}")
        if job.refused > SHOWN_REFUSALS:
            self.stdout.write(f"  … and {job.refused - SHOWN_REFUSALS} more.")
        if job.refused and refused_file:
            headings, rows = imports.refused_rows(job)
            response = download("refused", job.file_format, headings, rows)
            with open(refused_file, "wb") as out:
                for chunk in response.streaming_content:
                    out.write(chunk)
            self.stdout.write(f"The refused rows are in {refused_file}: fix them and import that file.")
        if job.refused:
            raise CommandError(f"{job.refused} row(s) refused.", returncode=1)
