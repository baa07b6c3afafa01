"""The embedded Celery broker (no server) carries a message end to end.

Production points CELERY_BROKER_URL at Redis or RabbitMQ; the default must
work with nothing installed, as ``make run`` relies on it.
"""

import pytest
from django.conf import settings
from kombu import Connection, Exchange, Queue


@pytest.mark.skipif(settings.CELERY_BROKER_URL != "filesystem://", reason="a broker server is configured")
def test_filesystem_broker_round_trip(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {
        "data_folder_in": str(folder),
        "data_folder_out": str(folder),
        "control_folder": str(tmp_path / "control"),
    }
    queue = Queue("apim-test", Exchange("apim-test"), routing_key="apim-test")
    with Connection("filesystem://", transport_options=options) as conn:
        conn.Producer().publish({"hello": "world"}, exchange=queue.exchange, routing_key="apim-test", declare=[queue])
        received = []
        with conn.Consumer(queue, callbacks=[lambda body, message: (received.append(body), message.ack())]):
            conn.drain_events(timeout=5)
    assert received == [{"hello": "world"}]


def test_celery_app_reads_the_broker_from_settings():
    from apim.celery import app

    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    assert app.conf.task_acks_late is True
    if settings.CELERY_BROKER_URL == "filesystem://":
        # Every folder the embedded broker writes lives under the data folder, not the working directory.
        for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
            assert app.conf.broker_transport_options[key].startswith(str(settings.DATA_DIR))


@pytest.mark.skipif(settings.CELERY_BROKER_URL != "filesystem://", reason="a broker server is configured")
def test_the_embedded_broker_folders_exist_so_a_first_send_works():
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    from pathlib import Path

    for name in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        assert Path(options[name]).is_dir(), name
    from apim.celery import app

    with app.connection_for_write() as conn:
        producer = conn.Producer()
        queue = Queue("apim-folders-test", Exchange("apim-folders-test"), routing_key="apim-folders-test")
        producer.publish({"ok": True}, exchange=queue.exchange, routing_key="apim-folders-test", declare=[queue])
        with conn.Consumer(queue, callbacks=[lambda body, message: message.ack()]):
            conn.drain_events(timeout=5)
