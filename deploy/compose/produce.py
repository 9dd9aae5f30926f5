"""Produces standard input's lines, one record each, to a Kafka topic: the compose stack's
generator job (`brevvakt generate … | python3 produce.py BROKERS TOPIC`).

kcat cannot do this here: Debian 12's kcat links librdkafka 2.0.2, which cannot read
tansu 0.6's ApiVersion v3 answer ("ApiVersionRequest failed: Local: Read underflow", every
try). confluent-kafka's wheel bundles a current librdkafka, as brevvakt's rdkafka does.
Exits non-zero when a record could not be delivered.
"""

import sys

from confluent_kafka import Producer


def main(brokers: str, topic: str) -> int:
    failed = []
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 20, "enable.idempotence": True})

    def delivered(err, _msg):
        if err is not None:
            failed.append(err)

    count = 0
    for line in sys.stdin.buffer:
        line = line.rstrip(b"\r\n")
        if not line:
            continue
        while True:
            try:
                producer.produce(topic, line, on_delivery=delivered)
                break
            except BufferError:  # the local queue is full: let deliveries drain it
                producer.poll(0.1)
        producer.poll(0)
        count += 1
    undelivered = producer.flush(60)
    print(f"produced {count} records to {topic}; {len(failed) + undelivered} not delivered", file=sys.stderr)
    return 1 if failed or undelivered else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: produce.py BROKERS TOPIC < lines")
    sys.exit(main(sys.argv[1], sys.argv[2]))
