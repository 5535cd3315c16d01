"""Apache Kafka on loopback, from Maven Central's jars: `shipguard broker --kind kafka` and tests.

A single node in KRaft mode (combined controller and broker, no ZooKeeper, no Docker) on Java 17
or newer. The jars (`org.apache.kafka:kafka_2.13` KAFKA_VERSION and its dependencies, with
`kafka-tools` and `slf4j-simple`) are fetched once with Maven into a cache directory
(`SHIPGUARD_KAFKA_HOME`, default `~/.cache/shipguard/kafka-<version>`) and reused. The data
lives in a temporary directory unless one is given; the node is formatted on first use of it.

An ApacheKafka owns its Java process from `start()` to `stop()`, like `EmbeddedBroker`, whose
interface it shares (url, bootstrap, running, log_tail, the context manager).
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import IO

from streams.kafka import admin
from streams.kafka.embedded import free_port
from streams.kafka.local import HOST, BrokerError, LocalBroker

log = logging.getLogger("shipguard")
KAFKA_VERSION = "4.4.0"
SLF4J_VERSION = "2.0.17"
POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>shipguard</groupId><artifactId>apache-kafka</artifactId><version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>{version}</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>{version}</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-simple</artifactId><version>{slf4j}</version></dependency>
    <!-- the API of the same version: a dependency's slf4j-api 1.7 would find no binding and log nothing -->
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>{slf4j}</version></dependency>
  </dependencies>
</project>
"""


def unavailable() -> str | None:
    """Why Apache Kafka cannot run here (None: it can): Java 17+ and Maven are needed."""
    java = shutil.which("java")
    if java is None:
        return "no `java` on PATH (Apache Kafka 4 needs Java 17 or newer)"
    if shutil.which("mvn") is None and not _lib(home()).is_dir():
        return "no `mvn` on PATH to fetch Apache Kafka's jars from Maven Central (and none cached)"
    answer = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30)
    text = answer.stderr + answer.stdout
    major = _java_major(text)
    if major is None or major < 17:
        return f"Java 17 or newer is needed, found: {text.strip().splitlines()[0] if text.strip() else '?'}"
    return None


def _java_major(text: str) -> int | None:
    for word in text.replace('"', " ").split():
        head = word.split(".")[0]
        if head.isdigit() and ("." in word or word.isdigit()):
            return 8 if head == "1" else int(head)
    return None


def home(version: str = KAFKA_VERSION) -> Path:
    """Where the jars of `version` are cached."""
    root = os.environ.get("SHIPGUARD_KAFKA_HOME")
    return Path(root) if root else Path.home() / ".cache" / "shipguard" / f"kafka-{version}"


def _lib(cache: Path) -> Path:
    return cache / "lib"


def fetch_jars(version: str = KAFKA_VERSION, progress: IO[str] | None = sys.stderr) -> Path:
    """The directory of Apache Kafka's jars, fetched with Maven the first time (saying so)."""
    cache = home(version)
    lib = _lib(cache)
    if lib.is_dir() and any(lib.glob("kafka_2.13-*.jar")) and not any(lib.glob("slf4j-api-1.*.jar")):
        return lib
    shutil.rmtree(lib, ignore_errors=True)  # none, or an older fetch whose broker logged nothing
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Apache Kafka's jars are not cached and there is no `mvn` to fetch them")
    cache.mkdir(parents=True, exist_ok=True)
    (cache / "pom.xml").write_text(POM.format(version=version, slf4j=SLF4J_VERSION), encoding="utf-8")
    partial = cache / "lib.partial"
    shutil.rmtree(partial, ignore_errors=True)
    if progress is not None:
        print(f"fetching Apache Kafka {version} (org.apache.kafka:kafka_2.13 and its dependencies, about 55 MB) "
              f"from Maven Central into {lib} (once)...", file=progress, flush=True)
    started = time.monotonic()
    done = subprocess.run([mvn, "-q", "-B", "-f", str(cache / "pom.xml"), "dependency:copy-dependencies",
                           f"-DoutputDirectory={partial}", "-DincludeScope=runtime"],
                          capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise BrokerError(f"Maven could not fetch Apache Kafka {version}: "
                          f"{(done.stdout + done.stderr).strip()[-1500:]}")
    partial.rename(lib)  # whole or not at all: an interrupted fetch leaves no half cache
    if progress is not None:
        jars = list(lib.glob("*.jar"))
        print(f"fetched {len(jars)} jars in {time.monotonic() - started:.0f} s", file=progress, flush=True)
    return lib


class ApacheKafka(LocalBroker):
    """A single-node Apache Kafka (KRaft) on 127.0.0.1:`port`; its controller on a private port."""

    def __init__(self, port: int | None = None, data_dir: Path | None = None,
                 version: str = KAFKA_VERSION, advertised_port: int | None = None) -> None:
        super().__init__(free_port() if port is None else port)
        self._chosen_port = port is None  # ours to choose again if another process takes it first
        # what clients are told to connect to (a TCP proxy's port in a test); `port` by default
        self.advertised_port = self.port if advertised_port is None else advertised_port
        self._advertised_given = advertised_port is not None
        self.controller_port = free_port()
        self.internal_port = free_port()  # the broker's own listener for itself (e.g. transaction markers)
        self.version = version
        self._given_dir = data_dir
        self.data_dir: Path | None = None

    def start(self, timeout: float = 60.0) -> ApacheKafka:
        """Fetch the jars if needed, format the data directory if new, start, wait for metadata.

        A free port is only free when it is picked: another process can bind it before the JVM
        does. Ports this object picked itself are picked again, up to three times."""
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except BrokerError as exc:
                if attempt == 2 or "Address already in use" not in str(exc):
                    raise
                log.warning("Apache Kafka could not bind a port (another process took it): trying other ports")
                if self._chosen_port:
                    self.port = free_port()
                    if self.advertised_port != self.port and not self._advertised_given:
                        self.advertised_port = self.port
                self.controller_port, self.internal_port = free_port(), free_port()
        raise AssertionError("unreachable")

    def _start_once(self, timeout: float) -> ApacheKafka:
        why = unavailable()
        if why is not None:
            raise BrokerError(f"Apache Kafka cannot run here: {why}")
        lib = fetch_jars(self.version)
        self.data_dir = Path(self._given_dir or tempfile.mkdtemp(prefix="shipguard-kafka-"))
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text(self._properties(), encoding="utf-8")
        classpath = f"{lib}/*"
        if not (self.data_dir / "logs" / "meta.properties").exists():
            formatted = subprocess.run(
                ["java", "-cp", classpath, "kafka.tools.StorageTool", "format", f"--cluster-id={_cluster_id()}", "-c",
                 str(config)], capture_output=True, text=True, timeout=120)
            if formatted.returncode != 0:
                raise BrokerError(f"formatting {self.data_dir} failed: {formatted.stderr.strip()[-1000:]}")
        self._log = tempfile.TemporaryFile(prefix="shipguard-kafka-")
        self._proc = subprocess.Popen(["java", "-Xmx768m", "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp",
                                       classpath, "kafka.Kafka", str(config)],
                                      stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                bind = "Address already in use" in self.log_tail(2000)
                raise BrokerError(f"Apache Kafka exited while starting{' (Address already in use)' if bind else ''}:"
                                  f"\n{self.log_tail()}")
            try:
                admin.wait_for_broker(self.bootstrap, timeout=1.0)
                return self
            except admin.BrokerUnreachable:
                continue
        self.stop()
        raise BrokerError(f"Apache Kafka did not answer within {timeout:g} s:\n{self.log_tail()}")

    def _properties(self) -> str:
        assert self.data_dir is not None
        return "\n".join([
            "process.roles=broker,controller", "node.id=1",
            f"controller.quorum.voters=1@{HOST}:{self.controller_port}",
            f"listeners=PLAINTEXT://{HOST}:{self.port},INTERNAL://{HOST}:{self.internal_port},"
            f"CONTROLLER://{HOST}:{self.controller_port}",
            f"advertised.listeners=PLAINTEXT://{HOST}:{self.advertised_port},INTERNAL://{HOST}:{self.internal_port}",
            # what the broker sends itself (transaction markers) never goes through a client's proxy
            "inter.broker.listener.name=INTERNAL",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={self.data_dir / 'logs'}",
            # one node: the internal topics cannot have more replicas
            "offsets.topic.replication.factor=1", "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1", "share.coordinator.state.topic.replication.factor=1",
            "share.coordinator.state.topic.min.isr=1",
            "group.initial.rebalance.delay.ms=0",  # tests start workers at once
            "auto.create.topics.enable=false",  # every shipguard topic is created with its count
            "",
        ])

    def stop(self, grace: float = 15.0) -> None:
        """SIGTERM (a controlled shutdown), then SIGKILL after `grace` seconds; safe to call twice."""
        self._end_process(grace)
        if self._given_dir is None and self.data_dir is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


def _cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (what `random-uuid` prints).

    One in 64 starts with "-": it is passed as `--cluster-id=ID`, never as a separate argument
    (the storage tool took such an id for an option and refused to format)."""
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
