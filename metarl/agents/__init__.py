"""metarl.agents: the learners (torch), one module per algorithm on shared pieces.

Contracts: ``policy`` (what a sampler runs; no torch), ``base`` (what the trainer and
the meta-test need from an agent: ``Agent``, and the learner kinds ``BatchAgent`` and
``TrainStepAgent``), ``control_step`` (what an agent offers for export).

Shared pieces: ``networks`` (MLPs, the GRU core, the Gaussian head that is also the
Gaussian MLP policy, Gaussian densities, activations, action scaling),
``mlp_policy`` (the Gaussian MLP policy as samplers run it, one parameter set per
task), ``ppo_update`` (the PPO update, GAE, the loss terms, return
standardization), ``trpo`` (conjugate gradient, line search), ``sac`` (SAC's
tanh-Gaussian policy, Polyak averaging), ``replay`` (replay buffers),
``linear_baseline`` (the linear feature baseline). Each algorithm's config is a
settings class (``metarl.checks.settings``): one declaration per hyperparameter, with
its range on the field.

Algorithms (the names configs use in ``agent.name``): ``rl2`` (``rl2``), ``ppo``
(``ppo``: PPO over the task distribution), ``gradient_meta`` (what MAML-TRPO and ProMP
share) with ``maml_trpo`` (``maml_trpo``) and ``promp`` (``promp``), ``pearl``
(``pearl``; its encoder and policy in ``pearl_networks``), ``baselines`` (random, and
the Stable-Baselines3 multi-task and oracle baselines).
"""
