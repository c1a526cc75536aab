# Folder connections read only inside REPORTS_ROOT/<company slug>/. A saved path inside it
# is kept (an absolute one in its relative form); one outside freezes the connection, with
# a notice on its page saying what to do.

import os

from django.db import migrations, models
from django.utils import timezone

from stores.folders import OutsideCompanyFolder, company_folder, path_in_company_folder


def confine_folder_paths(apps, schema_editor):
    Connection = apps.get_model("integrations", "Connection")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    frozen_tasks = []
    for connection in Connection.objects.filter(provider="folder").select_related("company"):
        raw = str(connection.settings.get("path") or "").strip()
        slug = connection.company.slug
        try:
            resolved = path_in_company_folder(slug=slug, path=raw)
        except OutsideCompanyFolder:
            try:
                folder = f"{company_folder(slug)}/"
            except OutsideCompanyFolder:
                folder = "the company's report folder"
            connection.is_frozen = True
            connection.notice = (
                f"This folder connection pointed outside the company's report folder ({raw}) and was "
                f"frozen; move the files under {folder} and save a path relative to it.")
            connection.save(update_fields=["is_frozen", "notice"])
            if connection.periodic_task_id:
                frozen_tasks.append(connection.periodic_task_id)
            continue
        if os.path.isabs(raw):
            relative = resolved.relative_to(company_folder(slug).resolve()).as_posix()
            connection.settings = {**connection.settings, "path": "" if relative == "." else relative}
            connection.save(update_fields=["settings"])
    if frozen_tasks:
        PeriodicTask.objects.filter(pk__in=frozen_tasks).update(enabled=False)
        # What beat watches to reload its schedule.
        PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


class Migration(migrations.Migration):

    dependencies = [
        ('integrations', '0002_covacredential_signuppush_and_more'),
        ('django_celery_beat', '0019_alter_periodictasks_options'),
    ]

    operations = [
        migrations.AddField(
            model_name='connection',
            name='notice',
            field=models.TextField(blank=True, help_text='What the platform changed on its own and why (e.g. froze it); shown until its settings are saved.'),
        ),
        # Not reversed: unfreezing would open the other companies' folders again.
        migrations.RunPython(confine_folder_paths, migrations.RunPython.noop),
    ]
