"""The studio's default executor: one process for a run over one sentence, a process per step
for a batch.

A run that regenerates one edited sentence's chain (narration, shot, keyframe, clip) or the
project outputs spends most of its time starting processes: Dagster's multiprocess executor
starts each step in a new process that imports Dagster and loads the code location again
(2-5 s each on a small machine), four times in a row for a chain. Those runs execute in the
run's own process instead. A batch (a run over a range of sentences, as declarative automation
and backfills launch them) keeps Dagster's multiprocess executor: its few steps are long and
independent ones (narration beside shot) overlap.

Either way the instance's pools (``gpu``, ``tts``, ``render``) bound what runs at once across
runs; within a run over one sentence the steps run one after another.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import dagster as dg
from dagster import DagsterEvent, Executor, multiple_process_executor_requirements

from videogen_assets.dagster_internals import (
    ASSET_PARTITION_RANGE_START_TAG,
    ExecutionPlan,
    PlanOrchestrationContext,
    RetryMode,
    in_process_executor,
    multiprocess_executor,
)


def runs_in_process(tags: Mapping[str, str]) -> bool:
    """Whether a run with these tags executes in its own process: it is not over a range of
    partitions (a batch of sentences)."""
    return ASSET_PARTITION_RANGE_START_TAG not in tags


class SentenceOrBatchExecutor(Executor):
    """In-process for a run over at most one partition, multiprocess for a range of them."""

    def __init__(self, retries: RetryMode) -> None:
        self._in_process = in_process_executor(retries)
        # max_concurrent: the core count; the pools bound the rest
        self._multiprocess = multiprocess_executor(retries, max_concurrent=None)
        self._retries = retries

    @property
    def retries(self) -> RetryMode:
        return self._retries

    def execute(
        self, plan_context: PlanOrchestrationContext, execution_plan: ExecutionPlan
    ) -> Iterator[DagsterEvent]:
        in_process = runs_in_process(plan_context.dagster_run.tags)
        chosen: Executor = self._in_process if in_process else self._multiprocess
        yield from chosen.execute(plan_context, execution_plan)


@dg.executor(
    name="sentence_or_batch",
    requirements=multiple_process_executor_requirements(),
)
def sentence_or_batch_executor(init_context: dg.InitExecutorContext) -> Executor:
    """One process for a run over one sentence (an edit) or the project outputs; Dagster's
    multiprocess executor for a batch of sentences."""
    return SentenceOrBatchExecutor(retries=RetryMode.ENABLED)
