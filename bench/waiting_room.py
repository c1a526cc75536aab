"""The waiting-room queue's live update with 200 customers in line, on the demo data.

    .venv/bin/python -m config.launcher exec -- .venv/bin/python bench/waiting_room.py [--entries N]

Loads the demo company when it is missing, checks N of its customers in to one store's
queue (through the same service the kiosk uses), then times the request the budtender's
page sends every two seconds (Django test client: middleware, session, ORM, template)
against, as the baseline in the same run, the hand-written SQL for the same rows. The
entries it added are removed again. Last line:
entries=… queue_ms=… raw_sql_ms=… ratio=… queries=…
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from bench.common import median_ms  # noqa: E402
from loyalty.management.commands.load_demo import DEMO_SLUG  # noqa: E402
from stores.models import Company  # noqa: E402
from waitingroom.models import QueueEntry  # noqa: E402
from waitingroom.services import queue_check_in, store_local_date  # noqa: E402

RAW_SQL = """
SELECT q.id, q.state, q.checked_in_at, p.id, p.first_name, p.last_name, p.is_member, u.username
FROM waitingroom_queueentry q
JOIN loyalty_persona p ON p.id = q.persona_id
LEFT JOIN auth_user u ON u.id = q.served_by_id
WHERE q.store_id = %s AND q.local_date = %s AND q.state IN ('waiting', 'serving')
ORDER BY q.checked_in_at, q.id
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()

    setup_test_environment()
    if not Company.objects.filter(slug=DEMO_SLUG).exists():
        call_command("load_demo", verbosity=0)
    company = Company.objects.get(slug=DEMO_SLUG)
    store = company.stores.filter(opt_in_queue_enabled=True).order_by("pk").first()
    today = store_local_date(store, timezone.now())
    waiting = QueueEntry.objects.filter(store=store, local_date=today, state__in=["waiting", "serving"])
    busy = set(waiting.values_list("persona_id", flat=True))
    personas = (company.personas.exclude(phone="").exclude(pk__in=busy)
                .order_by("pk")[:max(0, args.entries - len(busy))])
    added = [queue_check_in(store=store, phone=p.phone).pk for p in personas]
    try:
        in_line = waiting.count()
        client = Client()
        client.force_login(get_user_model().objects.get(username="budtender"))
        url = f"/queue/{store.pk}/"

        def update():
            response = client.get(url, headers={"HX-Request": "true", "HX-Target": "queue-entries"})
            assert response.status_code == 200, response.status_code

        def raw():
            with connection.cursor() as cursor:
                cursor.execute(RAW_SQL, [store.pk, today])
                cursor.fetchall()

        update()
        raw()  # warm both
        with CaptureQueriesContext(connection) as queries:
            update()
        queue_ms, raw_ms = median_ms(update, args.repeat), median_ms(raw, args.repeat)
    finally:
        QueueEntry.objects.filter(pk__in=added).delete()
    print(f"{store.name}: {in_line} in line, the update request makes {len(queries)} queries")
    print(f"entries={in_line} queue_ms={queue_ms:.1f} raw_sql_ms={raw_ms:.2f} "
          f"ratio={queue_ms / raw_ms:.1f} queries={len(queries)}")


if __name__ == "__main__":
    main()
