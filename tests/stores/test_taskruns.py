"""One log line per task run: task, id, duration and outcome (success, failure, retry)."""

import pytest

from config.celery import app

from .test_logs import Lines


@pytest.fixture
def task_lines():
    import logging

    handler = Lines()
    logger = logging.getLogger("loyalty.tasks")
    # At INFO whatever an earlier test of this process left the level of a parent logger at.
    level, logger.level = logger.level, logging.INFO
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


attempts: list[int] = []


@app.task(bind=True, name="tests.taskruns.flaky", max_retries=1)
def flaky(self, fail_with: str):
    if fail_with == "retry":
        attempts.append(1)
        if len(attempts) == 1:
            raise self.retry(countdown=0)
        return "ok"
    if fail_with:
        raise RuntimeError("the task broke")
    return "ok"


def test_each_run_says_how_it_ended(task_lines):
    flaky.apply(args=[""])
    flaky.apply(args=["boom"])
    flaky.apply(args=["retry"])  # an eager retry runs again at once
    outcomes = [(line["task"], line["outcome"]) for line in task_lines.parsed() if line.get("task")]
    assert outcomes == [("tests.taskruns.flaky", "success"), ("tests.taskruns.flaky", "failure"),
                        ("tests.taskruns.flaky", "retry"), ("tests.taskruns.flaky", "success")]
    assert all("run_id" not in line for line in task_lines.parsed())
