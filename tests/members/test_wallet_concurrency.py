"""A reward bought twice at once, through a real server on PostgreSQL: twenty purchases
released together by a barrier, where the points cover one."""

import re
import threading
from collections import Counter

import pytest
import requests
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse

from loyalty.models import PointsEntry, WalletItem
from members.sessions import CUSTOMER_COOKIE, customer_session_start
from tests.factories import CompanyFactory
from tests.members.test_wallet import member, page_on, ten_off

THREADS = 20


def session_for(live_server, company, persona, offer):
    """A browser session signed in as `persona`, with the confirmation form's CSRF token."""
    page_on(company)
    response = HttpResponse()
    customer_session_start(company=company, persona=persona, request=RequestFactory().get("/"),
                           response=response)
    browser = requests.Session()
    browser.cookies.set(CUSTOMER_COOKIE, response.cookies[CUSTOMER_COOKIE].value)
    url = f"{live_server.url}{reverse('members:reward_confirm', args=[company.slug, offer.pk])}"
    page = browser.get(url, timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return browser, url, csrf


def post_at_once(browser, url, bodies):
    answers, barrier = [None] * len(bodies), threading.Barrier(len(bodies))

    def send(i):
        barrier.wait()
        response = requests.post(url, data=bodies[i], cookies=browser.cookies, allow_redirects=False,
                                 timeout=30)
        answers[i] = response.status_code

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Counter(answers)


@pytest.mark.django_db(transaction=True)
def test_reward_bought_twenty_times_at_once_from_twenty_forms_succeeds_once(live_server):
    # given a member with 150 points (one $10 off at 100) and twenty open forms (tabs)
    company = CompanyFactory()
    persona, offer = member(company, 150), ten_off(company)
    browser, url, csrf = session_for(live_server, company, persona, offer)

    # when all twenty are confirmed at the same moment
    answers = post_at_once(browser, url, [{"csrfmiddlewaretoken": csrf, "purchase_token": f"tab-{i}"}
                                          for i in range(THREADS)])

    # then exactly one buys it; the others are told they need more points; one charge
    persona.refresh_from_db()
    ledger = sum(PointsEntry.objects.filter(persona=persona).values_list("delta", flat=True))
    print(f"\nloyalty page buy x{THREADS}, {THREADS} forms: {dict(answers)} balance={persona.points_balance}")
    assert answers == Counter({302: 1, 409: THREADS - 1})
    assert WalletItem.objects.filter(persona=persona).count() == 1
    assert persona.points_balance == 50 == ledger


@pytest.mark.django_db(transaction=True)
def test_reward_form_sent_twenty_times_at_once_buys_once(live_server):
    # given a member with points for many, and one form
    company = CompanyFactory()
    persona, offer = member(company, 5000), ten_off(company)
    browser, url, csrf = session_for(live_server, company, persona, offer)

    # when the same form is sent twenty times at once (a stuck button, a flaky network)
    form = {"csrfmiddlewaretoken": csrf, "purchase_token": "one-form"}
    answers = post_at_once(browser, url, [form] * THREADS)

    # then every answer is the success, and one item was bought
    persona.refresh_from_db()
    assert answers == Counter({302: THREADS})
    assert WalletItem.objects.filter(persona=persona).count() == 1 and persona.points_balance == 4900
