"""Stand-in for Kafka's ``kafka-topics.sh`` that does the same to the real broker through kafka-python.

The machine has no Java Kafka distribution, so ``deploy/kafka/create-topics.sh`` is run with
``KAFKA_BIN`` pointing at a wrapper of this script: the shell logic (which topics, which partition
counts, ``--if-not-exists``) is exercised unchanged against the session's real broker. Only the
options that script uses are understood; anything else fails loudly.
"""

from __future__ import annotations

import argparse
import sys

from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kafka-topics.sh")
    parser.add_argument("--bootstrap-server", required=True)
    parser.add_argument("--command-config")
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--create", action="store_true")
    action.add_argument("--describe", action="store_true")
    parser.add_argument("--if-not-exists", action="store_true")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--partitions", type=int)
    parser.add_argument("--replication-factor", type=int)
    args = parser.parse_args(argv)
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap_server, client_id="kafka-topics-stub")
    try:
        if args.create:
            spec = {"num_partitions": args.partitions, "replication_factor": args.replication_factor}
            try:
                admin.create_topics({args.topic: spec})
                print(f"Created topic {args.topic}.")
            except TopicAlreadyExistsError:
                if not args.if_not_exists:
                    print(f"Error while executing topic command : Topic '{args.topic}' already exists.")
                    return 1
        else:
            (topic,) = admin.describe_topics([args.topic])
            print(f"Topic: {args.topic}\tPartitionCount: {len(topic['partitions'])}")
    finally:
        admin.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
