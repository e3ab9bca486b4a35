import socket

import pytest
from django.db import connection


def test_healthz_answers_without_touching_the_database(client):
    # No django_db mark: pytest-django makes any database access here an error.
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_readyz_answers_200_while_the_database_answers(client):
    assert client.get("/readyz").status_code == 200


def test_probes_refuse_writes(client):
    assert client.post("/healthz").status_code == 405


def closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # free again once closed: nothing listens there


@pytest.mark.django_db(transaction=True)
def test_readyz_is_503_and_healthz_200_when_the_database_is_unreachable(client):
    real = connection.settings_dict.copy()
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=closed_port())
    try:
        ready, alive = client.get("/readyz"), client.get("/healthz")
    finally:
        connection.close()
        connection.settings_dict.update(real)
    assert (ready.status_code, alive.status_code) == (503, 200)
    assert connection.cursor()  # the real database is back for the next test
