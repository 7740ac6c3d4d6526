"""Rollouts: chain -> task -> validated task -> agent run -> verdict -> trajectory record."""

from rollout.agent import InvalidTask, RolloutResult, StageResult, run_rollout
from rollout.config import RolloutConfig
from rollout.task import Stage, Task, TaskError, build_task
from rollout.validation import StageValidation, TaskValidation, validate_task

__all__ = ["InvalidTask", "RolloutConfig", "RolloutResult", "Stage", "StageResult",
           "StageValidation", "Task", "TaskError", "TaskValidation", "build_task",
           "run_rollout", "validate_task"]
