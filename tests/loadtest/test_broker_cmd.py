"""``triage broker``: a Kafka client can use it while it runs, and Ctrl-C stops it and its Tansu process."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest
from kafka import KafkaConsumer, KafkaProducer

from loadtest.broker import free_port
from tests.names import unique_name

# It starts a broker of its own, so it belongs with the tests that need one.
pytestmark = pytest.mark.integration


def test_broker_serves_kafka_clients_until_interrupted() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", "from triage.cli import main; main()", "broker", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=os.environ.copy(),
    )
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if "broker listening on" in line:
                break
        assert f"broker listening on 127.0.0.1:{port}" in "".join(lines), "".join(lines)
        topic, bootstrap = unique_name("broker-cmd"), f"127.0.0.1:{port}"
        producer = KafkaProducer(bootstrap_servers=bootstrap)
        producer.send(topic, b"hello").get(timeout=30)
        producer.close()
        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                 consumer_timeout_ms=10_000)
        assert [record.value for record in consumer] == [b"hello"]
        consumer.close()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert "broker stopped" in proc.stdout.read()
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, "the broker still listens after Ctrl-C"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
