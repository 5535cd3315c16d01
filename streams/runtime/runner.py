"""Start the worker: read settings and rules, prepare the broker, run the Faust app."""

from __future__ import annotations

import logging
import os
import re
import sys
import time

from processors.config import RulesError
from streams import topics as T
from streams.config import ConfigError, load_settings
from streams.rules_file import load_rules

log = logging.getLogger("shipguard")


# one %-conversion of a log template: what `%` would consume an argument for
_CONVERSION = re.compile(r"%(?:\((?P<key>[^)]*)\))?[#0\- +]*(?:\*|\d+)?(?:\.(?:\*|\d+))?[hlL]?(?P<conv>[a-zA-Z%])")
_BARE = re.compile(r"^[^\s\"=\\]+$")
_FIRST_PAIR = re.compile(r"(?:^|(?<=\s))[A-Za-z_][\w.\-]*=")


def logfmt_value(value: str) -> str:
    """A value as logfmt writes it: bare when it has no space, quote, = or backslash, else quoted."""
    if _BARE.match(value):
        return value
    escaped = value.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n").replace("\r", "\\r")
    return '"' + escaped.replace("\t", "\\t") + '"'


class KeyValueFormatter(logging.Formatter):
    """One line per record: `ts=... level=... logger=...` and then the message's own key=value pairs.

    Messages are written as `what key=%s key=%s` (see streams.worker.shell); a value interpolated
    right after `=` is quoted when it holds a space, quote or newline, so that an error text
    stays one value. A message with no pair at all becomes `msg="..."`. An exception becomes
    one `exc="..."` value: a line is always one record, whatever it carries.
    """

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        message = _message(record)
        parts = [f"ts={self.formatTime(record)}", f"level={record.levelname.lower()}",
                 f"logger={logfmt_value(record.name)}"]
        if _FIRST_PAIR.search(message) and "\n" not in message:
            parts.append(message)
        else:
            parts.append(f"msg={logfmt_value(message)}")
        if record.exc_info:
            parts.append(f"exc={logfmt_value(self.formatException(record.exc_info))}")
        elif record.stack_info:
            parts.append(f"stack={logfmt_value(self.formatStack(record.stack_info))}")
        return " ".join(parts)


def _message(record: logging.LogRecord) -> str:
    """The record's message with every argument interpolated right after `=` (by %s or %r)
    written as a logfmt value."""
    args = record.args
    if not args or not isinstance(args, tuple) or not isinstance(record.msg, str):
        return record.getMessage()
    template, quoted, index, pieces, last = record.msg, list(args), 0, [], 0
    for found in _CONVERSION.finditer(template):
        conv = found.group("conv")
        if conv == "%":
            continue
        if found.group("key") is not None or "*" in found.group(0) or index >= len(quoted):
            return record.getMessage()
        if conv in "sr" and found.start() > 0 and template[found.start() - 1] == "=":
            value = quoted[index]
            quoted[index] = logfmt_value(repr(value) if conv == "r" else str(value))
            pieces += [template[last:found.start()], "%s"]
            last = found.end()
        index += 1
    try:
        return ("".join(pieces) + template[last:]) % tuple(quoted)
    except (TypeError, ValueError):
        return record.getMessage()


class _StderrHandler(logging.StreamHandler):
    """shipguard's own stderr handler (configuring twice adds none)."""


def configure_logging(level: str) -> None:
    """Every log line is key=value (`KeyValueFormatter`) on stderr; Faust and aiokafka at WARNING.

    shipguard logs through its own handler: Faust's worker installs its own root handlers at
    start (level WARNING here), so shipguard's logger does not propagate to them and its INFO
    lines would be dropped. The root handlers (Faust's, aiokafka's lines) get the same format;
    Faust replaces them while it starts, so the worker calls this again once started.
    """
    numeric = getattr(logging, "WARNING" if level == "warn" else level.upper(), logging.INFO)
    logging.getLogger().setLevel(logging.WARNING)
    for noisy in ("faust", "mode", "aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    log.setLevel(numeric)
    formatter = KeyValueFormatter()
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
    if not any(isinstance(h, _StderrHandler) for h in log.handlers):
        log.addHandler(_StderrHandler(sys.stderr))
    for handler in log.handlers:
        handler.setFormatter(formatter)
    log.propagate = False


def run_worker(broker: str | None = None, clock: str | None = None) -> int:
    """`shipguard worker`: returns a process exit code."""
    from streams.kafka import security

    try:
        settings = load_settings(broker=broker, clock=clock)
        rules = load_rules(settings.rules_path)
        client_security = security.kafka_python_kwargs(settings)  # a bad CA or key file stops us here
    except (ConfigError, RulesError) as exc:
        print(f"shipguard worker: {exc}", file=sys.stderr)
        return 2
    import faust

    from streams.kafka import admin, compat
    from streams.runtime.app import build_app, uses_transactions

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s",
                        force=True)
    configure_logging(settings.log_level)
    try:
        admin.wait_for_broker(settings.bootstrap_servers, timeout=30.0, security=client_security)
    except Exception as exc:
        print(f"shipguard worker: broker {settings.broker} is not reachable: {exc}", file=sys.stderr)
        return 1
    embedded = compat.detect(settings)
    compat.create_topics_up_front(settings)
    counts = admin.partition_counts(settings.bootstrap_servers, T.all_topics(settings.app_id)
                                    + T.changelog_topics(settings.app_id), security=client_security)
    problems = admin.partition_mismatches(counts, settings.partitions)
    if problems:
        print(f"shipguard worker: refusing to start: {'; '.join(problems)}. Records would be judged in the wrong "
              "partition. Recreate those topics with SHIPGUARD_PARTITIONS partitions, or set "
              "SHIPGUARD_PARTITIONS to the count all its topics have (docs/broker.md).", file=sys.stderr)
        return 2
    if embedded and settings.transactions == "on":
        print("shipguard worker: SHIPGUARD_TRANSACTIONS=on, but the embedded broker has no transactions; "
              "use off there (docs/delivery.md)", file=sys.stderr)
        return 2
    faust_settings = compat.faust_settings(embedded)
    if settings.session_timeout_s is not None:
        faust_settings["broker_session_timeout"] = float(settings.session_timeout_s)
    log.info("shipguard worker starting: broker=%s security=%s embedded=%s clock=%s partitions=%d session_timeout_s=%g "
             "transactions=%s", settings.broker, security.describe(settings), embedded, settings.clock,
             settings.partitions, faust_settings.get("broker_session_timeout", 60.0),
             "on" if uses_transactions(settings, embedded) else "off")
    built = build_app(settings, rules, faust_settings, embedded=embedded)
    compat.apply(built.app, embedded)

    class Worker(faust.Worker):
        async def on_startup_finished(self) -> None:
            # Faust's worker sets the root logger to DEBUG and installs its own handlers at start:
            # put the level (docs/broker.md: 9%) and the key=value format back. (Assigning
            # app.on_startup_finished does nothing: the Worker overwrites it with this method.)
            await super().on_startup_finished()
            configure_logging(settings.log_level)

    worker = Worker(built.app, loglevel=os.environ.get("SG_FAUST_LOGLEVEL", "WARNING"), quiet=True,
                    redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0
