"""Java and Maven, for the servers that run on the JVM (the Kafka broker, the Zipkin server):
what is missing, worded as what to install. Maven fetches their jars once into the user cache."""

from __future__ import annotations

import re
import shutil
import subprocess

MIN_JAVA = 17


def problems(server: str, needs_maven: bool) -> list[str]:
    """What is missing to run `server` (its name, for the messages), as lines naming what to
    install (empty: nothing). `needs_maven`: its jars are not in the cache yet."""
    found = []
    java = shutil.which("java")
    if not java:
        found.append(f"Java {MIN_JAVA}+ is not installed ({server} runs on it): install Debian's "
                     "`openjdk-17-jre-headless` package, or any JDK 17+ with `java` on PATH.")
    elif java_major(java) < MIN_JAVA:
        found.append(f"`java` is version {java_major(java)}; {server} needs Java {MIN_JAVA}+: "
                     "install Debian's `openjdk-17-jre-headless` package and put it first on PATH.")
    if needs_maven and not shutil.which("mvn"):
        found.append(f"Maven is not installed (it fetches {server}'s jars from Maven Central once): "
                     "install Debian's `maven` package.")
    return found


def java_major(java: str) -> int:
    out = subprocess.run([java, "-version"], capture_output=True, text=True)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return 0
    major = int(match.group(1))
    return int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8
