"""metarl.sim2real: randomization schedules (``schedules``).

Learned simulators, the real-robot side and transfer evaluation come with the
sim-to-real issues.
"""
