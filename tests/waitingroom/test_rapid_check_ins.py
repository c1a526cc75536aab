"""Twenty check-ins with the same number at once, through a real server: one customer,
one place in the queue."""

import re
import threading

import pytest
import requests

from loyalty.models import Persona
from tests.factories import CompanyFactory, RetailStoreFactory
from waitingroom.models import QueueEntry


@pytest.mark.django_db(transaction=True)
def test_twenty_rapid_check_ins_leave_one_persona_and_one_entry(live_server):
    company = CompanyFactory()
    store = RetailStoreFactory(company=company, opt_in_queue_enabled=True)
    url = f"{live_server.url}/queue/check-in/{store.checkin_token}/"

    sessions = []
    for _ in range(20):
        session = requests.Session()
        page = session.get(url, timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        sessions.append((session, token))
    start = threading.Barrier(20)
    codes = []

    def tap(session, token):
        start.wait()
        response = session.post(url, timeout=30, headers={"Referer": url}, data={
            "csrfmiddlewaretoken": token, "phone": "(303) 555-0142", "first_name": "Dana",
            "last_name": "Double", "sms_opt_in": "on"})
        codes.append(response.status_code)

    threads = [threading.Thread(target=tap, args=pair) for pair in sessions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert codes == [200] * 20
    [persona] = Persona.objects.filter(company=company)
    assert persona.phone == "+13035550142" and persona.first_name == "Dana"
    [entry] = QueueEntry.objects.filter(store=store)
    assert entry.persona == persona and entry.state == "waiting"
