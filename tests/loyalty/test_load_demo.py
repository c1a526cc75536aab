from django.core.management import call_command
from django.db import connection

from loyalty.models import Persona, PointsEntry, Transaction
from stores.models import Company, Membership


def test_load_demo_builds_a_consistent_company_once(db, capsys):
    call_command("load_demo", personas=60, transactions=400)
    company = Company.objects.get(slug="green-leaf")
    assert company.stores.count() == 3
    assert set(company.stores.values_list("state", flat=True)) == {"CO", "OR"}
    assert set(Membership.objects.filter(company=company).values_list("role", flat=True)) == {
        "admin", "marketer", "budtender"}
    assert Persona.objects.filter(company=company).count() == 60
    assert Transaction.objects.filter(company=company).count() == 400
    assert set(Transaction.objects.values_list("fulfillment", flat=True)) == {
        "in_store", "pickup", "delivery"}
    with connection.cursor() as cursor:  # every balance is its ledger
        cursor.execute("""
            SELECT count(*) FROM loyalty_persona p
            LEFT JOIN (SELECT persona_id, sum(delta) s FROM loyalty_pointsentry GROUP BY 1) e
              ON e.persona_id = p.id
            WHERE coalesce(e.s, 0) <> p.points_balance""")
        assert cursor.fetchone()[0] == 0
    output = capsys.readouterr().out
    assert "admin" in output and "demo-pass-2026" in output

    # a second run adds nothing
    entries = PointsEntry.objects.count()
    call_command("load_demo", personas=60, transactions=400)
    assert Persona.objects.count() == 60 and Transaction.objects.count() == 400
    assert PointsEntry.objects.count() == entries
    assert "already loaded" in capsys.readouterr().out
