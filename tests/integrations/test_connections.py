from cryptography.fernet import Fernet
from django.test import override_settings

from integrations.services.connections import connection_create, connection_update


def test_secrets_saved_under_an_old_key_can_be_entered_again(company, db):
    connection = connection_create(
        company=company, name="Bucket", provider="s3",
        settings={"bucket": "reports", "region": "us-east-1"},
        credentials={"access_key_id": "AKIAOLD", "secret_access_key": "old-secret-1234"})
    with override_settings(FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode()):
        connection_update(connection=connection, name="Bucket", settings=connection.settings,
                          credentials={"access_key_id": "AKIANEW", "secret_access_key": "new-secret-5678"},
                          default_store=None, enroll_new_customers=True)
        connection.refresh_from_db()
        assert connection.credentials_plain() == {"access_key_id": "AKIANEW",
                                                  "secret_access_key": "new-secret-5678"}
        assert connection.credentials_hint["secret_access_key"] == "…5678"


def test_create_takes_the_nightly_time_and_enrolment(company, db):
    import datetime as dt

    connection = connection_create(company=company, name="Folder", provider="folder",
                                   settings={"path": "/srv/reports"}, credentials={},
                                   enroll_new_customers=False, sync_time=dt.time(3, 30))
    assert connection.enroll_new_customers is False
    assert (connection.periodic_task.crontab.hour, connection.periodic_task.crontab.minute) == ("3", "30")
