"""The plugin is registered exactly once, so Airflow's plugin loader keeps every other plugin
(it drops the rest of a batch at a duplicate name: docs/deploy.md, "Plugins registered once").
Without that, the OpenLineage provider's plugin can vanish and tasks emit no lineage."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REPO

PROBE = """
import json
from airflow.sdk import plugins_manager as sdk_plugins
from airflow.sdk._shared.module_loading import entry_points_with_dist
ours = [dist.metadata["Name"] for ep, dist in entry_points_with_dist("airflow.plugins")
        if ep.name == "dataproducts"]
plugins, errors = sdk_plugins._get_plugins()
print(json.dumps({"ours": ours, "plugins": sorted(p.name for p in plugins), "errors": errors,
                  "sources": {p.name: type(p.source).__name__ for p in plugins}}))
"""


def loaded_plugins(tmp_path, plugins_folder) -> dict:
    """What a task process started from the repository root loads (sys.path[0] = the root,
    as for ``python -m airflow``), with ``plugins_folder`` as Airflow's plugins folder."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update({"AIRFLOW_HOME": str(tmp_path / "home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "false",
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder),
                "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "console"})})
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_installed_package_is_seen_once_from_the_source_tree(tmp_path):
    found = loaded_plugins(tmp_path, tmp_path / "empty-plugins")
    assert found["ours"] == ["airflow-dataproducts"], (
        "the package's entry point is found more than once (a stale *.egg-info in the source "
        f"tree? `make install` removes it): {found['ours']}")
    assert {"dataproducts", "OpenLineageProviderPlugin"} <= set(found["plugins"]), found


def test_the_plugins_folder_shim_does_not_register_a_second_dataproducts(tmp_path):
    found = loaded_plugins(tmp_path, REPO / "plugins")
    assert {"dataproducts", "OpenLineageProviderPlugin"} <= set(found["plugins"]), found
    # registered by the entry point only: a second registration from the folder is what makes
    # Airflow drop the plugins after it when the entry points come in another order
    assert found["sources"]["dataproducts"] == "EntryPointSource", found["sources"]
    assert not found["errors"], found["errors"]
