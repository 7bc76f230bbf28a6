"""metarl.sim2real: from simulation to a robot, the layer above the meta-learning core.

- Randomization: ``schedules`` (what domain-randomized training draws physics
  from, over time) and ``adaptive`` (automatic DR, DORAEMON).
- Learned simulators: ``targets`` and ``simulated_robot`` ("real" systems for
  sim-to-sim work), ``sysid`` (DROPO and trajectory-matching fits) and
  ``sysid_command`` (``metarl sysid``).
- Transfer evaluation: ``transfer`` (``metarl transfer``).
- Real robots: ``robot`` (the interface and ``RealRobotEnv``), ``safety``,
  ``rate``, ``latency``, ``bridge`` and ``bridge_protocol`` (a robot served over TCP
  and its messages), ``recording`` and ``env_record`` (Minari datasets), ``export``
  and ``onnx_policy`` (ONNX), and ``robot_commands`` (``metarl serve``, ``record``,
  ``deploy``).

Importing this package imports none of them: each is imported by name.
"""
