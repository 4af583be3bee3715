"""Backfill pacing (docs/backfill.md): backfill runs of a product are held to the spec's
``backfill`` block so they never starve its scheduled runs.

- :mod:`.config`: the pacing settings of a product and its pool names;
- :mod:`.window`: ``allowed_hours``, the UTC window in which backfill runs may start;
- :mod:`.rate`: ``max_runs_per_hour``, a sliding one-hour ledger of admitted runs;
- :mod:`.gate`: the ``pacing`` task at the head of every product DAG, which defers a backfill
  run (in the triggerer, holding no worker slot) until the window opens and the rate allows;
- :mod:`.policy`: the ``task_instance_mutation_hook`` cluster policy that moves backfill task
  instances to the product's backfill pool, with a low priority weight, and holds the
  backfill's ``max_active_runs`` to the spec's;
- :mod:`.client`: Airflow's REST API (``/api/v2/backfills``) for ``dataproducts backfill``.
"""
