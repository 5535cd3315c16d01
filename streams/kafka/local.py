"""What the brokers shipguard starts on this machine share: the loopback host and their error."""

HOST = "127.0.0.1"


class BrokerError(RuntimeError):
    """The embedded broker cannot run; the message says why and what to do, in plain words."""
