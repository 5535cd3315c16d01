"""Kafka client errors as shipguard reads them."""

from aiokafka.errors import KafkaConnectionError, RequestTimedOutError

# the request may or may not have been written: only reading the partition can tell
AMBIGUOUS = (KafkaConnectionError, RequestTimedOutError)
