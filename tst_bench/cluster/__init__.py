"""The Ray layer: connecting to a cluster and running pools of actors on it.

connection.py  `acquire` joins a cluster (shipping this tst_bench to it) or starts a private one
               watched by reaper.py; the CLI's runs and the pytest fixtures both come through it.
resources.py   how many workers fit and what each asks Ray for (GPU shares, CPUs).
actors.py      `ActorPool`: start actors with those resources under a start deadline, tell a
               dead worker from a failing call, replace it, kill them all. The fold executor
               (executors/ray.py) and the predictor pool (predictors/pool.py) both run on it.

Importing this package does not import Ray; its functions do, when called.
"""
