"""One dynamic partition per sentence, one partitions definition per project."""

from __future__ import annotations

import re

import dagster as dg

PARTITION_KEY_RE = re.compile(r"[A-Za-z0-9._-]+")  # use fullmatch: "$" matches before a newline


def partitions_name(project: str) -> str:
    """The name of a project's dynamic sentence partitions."""
    return f"{project}__sentences"


def sentence_partitions(project: str) -> dg.DynamicPartitionsDefinition:
    """The dynamic partitions of a project's sentences (keys like ``volcanoes.s0007``)."""
    return dg.DynamicPartitionsDefinition(name=partitions_name(project))
