"""metarl: meta-reinforcement learning and sim-to-real transfer of robot controllers.

The package root holds the meta-learning core; ``metarl.envs`` holds the task
distributions and environments, ``metarl.agents`` the learners and
``metarl.sim2real`` randomization, learned simulators and real robots.
Importing ``metarl`` registers the ``metarl/`` Gymnasium environments, and, once Ray
Tune's registry is imported too, the same ids as RLlib environments
(``metarl.rllib.register_env_ids``).
"""

from wrapt import register_post_import_hook

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

# RLlib looks env names up in Ray Tune's registry, in the driver and on every env runner.
# A post-import hook fills it only where Ray Tune is imported: importing it here would add
# about 1.3 s to `import metarl` (0.2-0.3 s without it; wrapt adds about 15 ms; 2 cores).
register_post_import_hook("metarl.rllib:_on_tune_registry_import", "ray.tune.registry")

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
