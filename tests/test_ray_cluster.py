"""A training run on a two-node Ray cluster simulated on this machine.

``ray.cluster_utils.Cluster`` starts a head node and a second node (each its own
raylet, one CPU each) that the run reaches through ``ray.address``, exactly as it
would reach a real cluster; with one CPU per worker and per node, and
``sampler.placement: spread``, the two workers must land on different nodes.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray
from ray.cluster_utils import Cluster

from metarl.config import load_config
from metarl.run_folder import WORKERS_FILE
from metarl.runner import run_experiment

ROOT = Path(__file__).resolve().parents[1]
CONFIG = str(ROOT / "configs" / "rl2_point_robot.yaml")


@pytest.mark.slow  # two raylets and a training: ~40 s on 2 cores
def test_training_runs_on_a_two_node_cluster(tmp_path: Path) -> None:
    assert not ray.is_initialized()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    try:
        second = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        overrides = [
            "env.train_tasks=4",
            "env.test_tasks=2",
            "sampler.kind=ray",
            "sampler.num_workers=2",
            "sampler.num_envs=2",
            "sampler.cpus_per_worker=1",
            "sampler.placement=spread",
            f"ray.address={cluster.address}",
            "agent.meta_batch_size=4",
            "agent.hidden_size=8",
            "trainer.iterations=2",
            "trainer.progress=false",
            "evaluation.episodes=2",
            "evaluation.baselines=[]",
        ]
        run = run_experiment(load_config(CONFIG, overrides), tmp_path / "run")
        assert not ray.is_initialized()  # the sampler disconnected; the cluster lives on
        workers = json.loads((run / WORKERS_FILE).read_text())
        nodes = {node["NodeID"] for node in _nodes(cluster.address)}
        assert len(workers) == 2
        assert {w["node_id"] for w in workers} == nodes  # one worker on each node
        assert second.node_id in nodes
        assert all(w["peak_rss_bytes"] > 10 * 2**20 for w in workers)
        metrics = (run / "metrics.csv").read_text().splitlines()
        assert len(metrics) == 1 + 2  # header and both iterations
        results = json.loads((run / "results.json").read_text())
        assert results["methods"]["rl2"]["returns"]
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


def _nodes(address: str) -> list[dict[str, object]]:
    ray.init(address=address)
    try:
        return [n for n in ray.nodes() if n["Alive"]]
    finally:
        ray.shutdown()
