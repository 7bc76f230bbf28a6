"""metarl.sim2real: randomization schedules (``schedules``); learned simulators, the real-robot side and transfer evaluation come with the sim-to-real issues."""
