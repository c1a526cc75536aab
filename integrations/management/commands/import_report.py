"""Import local report files for a connection, through the same path as a nightly sync."""

from django.core.management.base import BaseCommand, CommandError

from integrations.models import Connection, ImportedFile
from integrations.services.sync import local_files_import, sync_runs_interrupt_lapsed
from stores.errors import DomainError

SHOW_ERRORS = 5


class Command(BaseCommand):
    help = "Import CSV report files into a connection (backfills, support). Exits 1 if a file is rejected."

    def add_arguments(self, parser):
        parser.add_argument("--company", required=True, help="The company's slug.")
        parser.add_argument("--connection", required=True, help="The connection's name.")
        parser.add_argument("files", nargs="+", metavar="FILE")

    def handle(self, *args, company, connection, files, **options):
        found = Connection.objects.select_related("company").filter(
            company__slug=company, name=connection).first()
        if found is None:
            names = list(Connection.objects.filter(company__slug=company).values_list("name", flat=True))
            raise CommandError(f"No connection '{connection}' in company '{company}'. "
                               f"Its connections: {', '.join(names) or 'none'}.")
        for path in files:
            try:
                open(path, "rb").close()
            except OSError as exc:
                raise CommandError(f"{path}: {exc.strerror}.") from None
        for dead in sync_runs_interrupt_lapsed(connection=found):
            self.stdout.write(self.style.WARNING(f"Earlier run #{dead.pk}: {dead.error}"))
        try:
            run = local_files_import(connection=found, paths=files)
        except DomainError as exc:
            raise CommandError(exc.message) from None

        rejected = 0
        for path, record in run.outcomes:
            if record is None:
                self.stdout.write(f"{path}: skipped, already imported as it is")
                continue
            if getattr(record, "unchanged", False):  # rejected before, the same file again
                rejected += 1
                self.stdout.write(self.style.ERROR(f"{path}: {record.rejected_unchanged_message()}"))
                continue
            if record.state == ImportedFile.State.REJECTED:
                rejected += 1
                self.stdout.write(self.style.ERROR(f"{path}: rejected: {record.error}"))
                continue
            self.stdout.write(
                f"{path}: {record.rows_accepted} accepted, {record.rows_rejected} rejected, "
                f"{record.rows_too_old} older than 12 months skipped, {record.transactions} transactions")
            for error in record.row_errors.all()[:SHOW_ERRORS]:
                where = f"row {error.row_number}" + (f", column '{error.column}'" if error.column else "")
                self.stdout.write(f"  {where}: '{error.value}' {error.reason}")
            if record.rows_rejected > SHOW_ERRORS:
                self.stdout.write(f"  … and {record.rows_rejected - SHOW_ERRORS} more rejected rows")
        if rejected:
            raise CommandError(f"{rejected} of {len(files)} files rejected.", returncode=1)
