"""metarl: meta-reinforcement learning and sim-to-real transfer of robot controllers.

The package root holds the meta-learning core; ``metarl.envs`` holds the task
distributions and environments, ``metarl.agents`` the learners and
``metarl.sim2real`` randomization, learned simulators and real robots.
Importing ``metarl`` registers the ``metarl/`` Gymnasium environments.
"""

from metarl import envs
from metarl.tasks import (
    AngleTask,
    DirectionTask,
    GoalTask,
    PhysicsTask,
    Task,
    TaskDistribution,
    TaskSets,
    VelocityTask,
)

__version__ = "0.1.0"

__all__ = [
    "AngleTask",
    "DirectionTask",
    "GoalTask",
    "PhysicsTask",
    "Task",
    "TaskDistribution",
    "TaskSets",
    "VelocityTask",
    "__version__",
    "envs",
]
