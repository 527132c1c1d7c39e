"""kfw: a Kaggle competition workbench built around leak-safe, persisted folds.

Where each stage of ``kfw cv`` lives, in the order a run goes through them (each package
imports only those above it in this list; ``tests/kfw/test_layout.py`` checks it):

- ``errors``, ``progress``, ``files``, ``threads``, ``markdown``, ``versions``: what
  everything shares (one error type, progress callbacks, atomic writes, the thread policy,
  markdown to HTML, the library versions a run records).
- ``core``: the fold machinery. ``config`` (the competition spec), ``folds`` (persisted,
  hashed splits), ``metrics``, ``encoding`` (fold-local encoders), ``registry`` (model
  names), ``cv`` (the fold loop), ``executor`` (where its folds run: here, local
  processes or a Dask cluster), ``noise`` (standard errors, runs compared under noise, the
  submission rule), ``runstore`` (the typed run record and the store), ``budget`` (the
  deadline ``--time-limit`` shares out), ``portfolio`` (the roster ``kfw new`` writes,
  chosen across a suite by leave-one-data-set-out).
- ``kaggle``: the competition's files and the way back. ``data`` (download, import, the
  open copies of ``opendata``, refusals of ``guard``), ``client`` (the official API),
  ``submit``, ``leaderboard``, ``campaign``, ``new`` (a spec inferred from a download).
- ``pipeline``: one run. ``design`` (row and fitted features), ``context`` (everything the
  runs of a competition share), ``runs`` (a model through the fold loop, saved),
  ``mirror`` (W&B), ``tuned`` (parameters ``kfw tune`` saved).
- ``dl``: torch: estimators in the fold loop, attention and the GPT, language models, papers
  reproduced.
- ``rl``: deep reinforcement learning on gymnasium: ``ppo``, ``dqn``, their runs
  (``kfw rl``), ablations and the PPO paper's reproduction.
- ``ensemble``: ``stack`` (blends, hill climbing, level 2) and ``roster`` (the roster, then
  its ensemble: what ``kfw cv`` runs).
- ``study``: questions about runs. ``tune``, ``audit`` (permuted targets), ``adversarial``
  (train against test), ``ablate``, ``bakeoff``, ``curves`` (learning and validation curves,
  read as high bias or high variance by ``bias_variance``).
- ``report``: the public write-up, its prose in ``report/templates``.
- ``cli``: the Typer skin.
"""

__version__ = "0.1.0"
