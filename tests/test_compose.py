"""The compose stack (docker-compose.yaml, Dockerfile, .env.example), checked without Docker.

- the file is valid against the Compose Specification's JSON Schema (``../shared/compose-spec``),
  as written and with every ``${VAR:-default}`` substituted;
- it has every service of issue 6, with healthchecks, dependency conditions that can be met,
  and a worker that ``--scale`` can multiply;
- its Airflow components run the commands and settings that the native integration test runs
  (``tests/airflow_services.py``: ``start_airflow`` with CeleryExecutor, as
  ``tests/test_distributed.py`` runs it, captured here by calling it with its
  process-starting methods replaced). Whatever differs is
  in an allow-list below with the reason; a setting added on either side fails until it is
  matched or listed;
- every ``AIRFLOW__SECTION__KEY`` it sets is a real option, and its connections and URLs point
  at services of the stack;
- the Dockerfile installs this package on the Airflow version that pyproject.toml pins;
- .env.example lists exactly the variables the compose file uses, with the same defaults.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

import airflow_services
from conftest import REPO, missing, shared_dir

COMPOSE = REPO / "docker-compose.yaml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
ENV_EXAMPLE = REPO / ".env.example"

# The services issue 6 asks for, by role.
REQUIRED_SERVICES = {
    "postgres": "Airflow metadata DB",
    "redis": "Celery broker",
    "airflow-init": "db migrate and users",
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-triggerer": "triggerer",
    "airflow-worker": "Celery workers (scalable)",
    "minio": "S3-compatible store",
    "minio-init": "one-shot bucket creation",
    "marquez-db": "Marquez's own Postgres",
    "marquez-api": "OpenLineage HTTP target",
    "marquez-web": "Marquez UI",
    "mailpit": "SMTP catcher for alerts",
}

# --- what deliberately differs between the compose stack and the native test, and why ---

# Airflow components the stack runs and the native test does not.
COMPOSE_ONLY_COMPONENTS: dict[str, str] = {}

# Command-line options of the native test that the stack does not give, and why.
NATIVE_ONLY_OPTIONS = {
    ("celery worker", "--celery-hostname"): "the native workers share one host, so each gets "
                                            "its own node name; every container has its own host",
}

# Environment the native Celery workers have on top of the common one (tests/airflow_services.py
# worker_env), and why the stack's workers do not need it.
NATIVE_WORKER_ONLY = {
    "DATAPRODUCTS_TEST_WORKER": "names the worker in task_instance.hostname; a container's host "
                                "name does that",
    "AIRFLOW__CORE__HOSTNAME_CALLABLE": "reads DATAPRODUCTS_TEST_WORKER (tests/worker_hostname.py)",
    "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": "one free port per worker on the shared host; "
                                                "containers keep the default 8793",
    "PYTHONPATH": "puts tests/worker_hostname.py on the path",
}

# Command-line options of the native test that the stack gives as settings instead (the
# option's default is that setting, so `api-server` alone reads them).
NATIVE_OPTIONS_AS_SETTINGS = {"--port": "AIRFLOW__API__PORT", "--host": "AIRFLOW__API__HOST"}

# Settings of the native test whose value differs in the stack: reason, and what must still hold.
DIFFERENT = {
    "AIRFLOW__CELERY__BROKER_URL": "host: the redis service vs an empty database of the local "
                                   "Redis per test",
    "AIRFLOW__CELERY__RESULT_BACKEND": "host and credentials: the postgres service vs the test's "
                                       "metadata database (same driver)",
    "AIRFLOW__CELERY__WORKER_CONCURRENCY": "8 task slots per container vs 1 per test worker, so "
                                           "two tasks at once must use both workers",
    "AIRFLOW__CORE__DAGS_FOLDER": "path: the products folder mounted into every container vs "
                                  "a test's folder",
    "AIRFLOW__DATAPRODUCTS__DATA_FOLDER": "bucket: s3://dataproducts/data in MinIO vs a fresh "
                                          "bucket per test on moto's server",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": "host and credentials: the postgres service vs a fresh "
                                           "database per test on 127.0.0.1 (same driver)",
    "AIRFLOW__API__HOST": "0.0.0.0 inside a container (Docker publishes the port) vs 127.0.0.1",
    "AIRFLOW__API__PORT": "port: 8080 vs a free port per test",
    "AIRFLOW__API__BASE_URL": "the URL browsers and alert links use vs 127.0.0.1:<port>",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": "the api-server's service name vs 127.0.0.1:<port> "
                                               "(same path)",
    "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "products start paused as with `make up` and "
                                                  "start_standalone; start_airflow unpauses them "
                                                  "so a test's runs start by themselves",
}

# Settings of the native test that the stack leaves at the default, and why.
LEFT_AT_DEFAULT = {
    "AIRFLOW_HOME": "path: the image's /opt/airflow vs a fresh folder per test",
    "AIRFLOW__CORE__PARALLELISM": "test sizing for 2 cores (4); the stack keeps Airflow's 32 per "
                                  "scheduler and sizes workers with [celery] worker_concurrency",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "loop tuning for fast tests",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "loop tuning for fast tests",
    "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "loop tuning for fast tests",
}

# Settings only the stack has (the native test has no broker, no Marquez, no SMTP server, no
# S3 store, and its components share one AIRFLOW_HOME), and why.
COMPOSE_ONLY = {
    "AIRFLOW__CORE__FERNET_KEY": "shared secret: the native components share one airflow.cfg with "
                                 "generated keys, containers do not",
    "AIRFLOW__API__SECRET_KEY": "shared secret (see AIRFLOW__CORE__FERNET_KEY)",
    "AIRFLOW__API_AUTH__JWT_SECRET": "shared secret: the scheduler signs task tokens that the "
                                     "api-server checks",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "the admin and the slo-reader user",
    "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": "on a volume, written by airflow-init",
    "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "the scheduler's healthcheck endpoint",
    "AIRFLOW__OPENLINEAGE__NAMESPACE": "lineage to Marquez",
    "AIRFLOW__OPENLINEAGE__TRANSPORT": "lineage to Marquez",
    "AIRFLOW_CONN_SMTP_DEFAULT": "alert emails to Mailpit",
    "AIRFLOW__DATAPRODUCTS__API_CONN_ID": "SLO state in alerts, freshness watchdog",
    "AIRFLOW_CONN_DATAPRODUCTS_API": "SLO state in alerts, freshness watchdog",
    "AIRFLOW_CONN_AWS_DEFAULT": "S3 inputs and exports on MinIO",
    "AIRFLOW_CONN_AWS_LANDING": "the demo's S3 input (fleet_daily) on MinIO",
}

# Environment one component has on top of the common one.
PER_SERVICE_EXTRAS = {"airflow-worker": {"DUMB_INIT_SETSID": "warm shutdown of Celery workers"}}

# Options the Celery provider adds (in the official image, not in this venv).
CELERY_PROVIDER_OPTIONS = {("celery", "result_backend")}


# --- reading the files ---

_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))")


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}`` and ``$$`` substitution,
    with the variables of ``env`` (none: every default applies)."""
    env = env or {}

    def substitute(match: re.Match) -> str:
        if match["escaped"]:
            return "$"
        name = match["name"] or match["bare"]
        op, arg = match["op"], match["arg"] or ""
        value = env.get(name)
        if op == ":-":
            return value if value else arg
        if op == "-":
            return arg if value is None else value
        if op is None and value is not None:
            return value
        raise AssertionError(f"${{{name}}} has no default: docker compose needs it set")

    return _VARIABLE.sub(substitute, value)


def variables(node) -> dict[str, str | None]:
    """Every ``${VAR...}`` in the strings of a loaded YAML document -> its default (None: none)."""
    found: dict[str, str | None] = {}
    if isinstance(node, dict):
        for value in node.values():
            found.update(variables(value))
    elif isinstance(node, list):
        for value in node:
            found.update(variables(value))
    elif isinstance(node, str):
        for match in _VARIABLE.finditer(node):
            name = match["name"] or match["bare"]
            if name:
                found[name] = match["arg"] if match["op"] in (":-", "-") else None
    return found


def resolve(node):
    """The document with every string interpolated with the defaults."""
    if isinstance(node, dict):
        return {key: resolve(value) for key, value in node.items()}
    if isinstance(node, list):
        return [resolve(value) for value in node]
    return interpolate(node) if isinstance(node, str) else node


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def compose(raw) -> dict:
    return resolve(raw)


def airflow_image(compose: dict) -> str:
    return compose["x-airflow-common"]["image"]


def airflow_services_of(compose: dict) -> dict[str, dict]:
    """The services running the stack's Airflow image, profiles included."""
    image = airflow_image(compose)
    return {name: s for name, s in compose["services"].items() if s.get("image") == image}


def command_words(command) -> list[str]:
    words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
    return words[1:] if words[:1] == ["airflow"] else words  # the image's entrypoint drops it too


def split_command(words) -> tuple[str, dict[str, str | None]]:
    """``("api-server", "--port", "8080")`` -> ``("api-server", {"--port": "8080"})``."""
    subcommand, options, i = [], {}, 0
    while i < len(words):
        word = words[i]
        if word.startswith("-"):
            if "=" in word:
                key, value = word.split("=", 1)
                options[key] = value
            elif i + 1 < len(words) and not words[i + 1].startswith("-"):
                options[word] = words[i + 1]
                i += 1
            else:
                options[word] = None
        else:
            subcommand.append(word)
        i += 1
    return " ".join(subcommand), options


def components(compose: dict) -> dict[str, str]:
    """Long-running Airflow components of the stack: service -> Airflow subcommand."""
    found = {}
    for name, service in airflow_services_of(compose).items():
        if service.get("profiles") or service.get("entrypoint") or "command" not in service:
            continue  # one-shots (airflow-init), on-demand tools (airflow-cli, demo seed)
        found[name] = split_command(command_words(service["command"]))[0]
    return found


def published_port(service: dict, container_port: int) -> int:
    for mapping in service.get("ports", []):
        host, _, container = str(mapping).rpartition(":")
        if int(container) == container_port:
            return int(host.rsplit(":", 1)[-1])
    raise AssertionError(f"container port {container_port} is not published")


def mount_targets(service: dict) -> dict[str, str]:
    """Container path -> source of each volume of a service (short syntax)."""
    targets = {}
    for volume in service.get("volumes", []):
        parts = volume.split(":")
        targets[parts[1]] = parts[0]
    return targets


@pytest.fixture
def native(tmp_path, monkeypatch):
    """What ``airflow_services.start_airflow`` runs for the distributed test (CeleryExecutor,
    two workers), without running anything: the environment of its components (with this
    process's environment emptied first, so only what it sets itself remains), the ``airflow``
    commands it runs to completion (``db migrate``) and the components it starts, each as
    ``(args, extra environment)``."""
    ran: list[tuple[str, ...]] = []
    started: list[tuple[tuple[str, ...], dict[str, str]]] = []
    for key in list(os.environ):
        monkeypatch.delenv(key)
    monkeypatch.setattr(airflow_services, "_create_database",
                        lambda admin_db_url: admin_db_url.rsplit("/", 1)[0] + "/dp_it_compose")
    monkeypatch.setattr(airflow_services.AirflowServices, "airflow",
                        lambda self, *args, check=True: ran.append(args))
    monkeypatch.setattr(airflow_services.AirflowServices, "start",
                        lambda self, name, *args, env=None: started.append((args, env or {})))
    monkeypatch.setattr(airflow_services.AirflowServices, "wait_healthy",
                        lambda self, timeout=120: None)
    services = airflow_services.start_airflow(
        tmp_path / "home", tmp_path / "products", "s3://dp-dist-compose/data",
        "postgresql://postgres@127.0.0.1:5432/postgres", 8080,
        celery=airflow_services.Celery(broker_url="redis://127.0.0.1:6379/15", workers=2,
                                       concurrency=1))
    return dict(services.env), ran, started


# --- (a) the Compose Specification ---

def test_compose_file_is_valid_against_the_compose_specification(raw, compose):
    import jsonschema

    path = shared_dir() / "compose-spec" / "compose-spec.json"
    if not path.is_file():
        missing(f"the Compose Specification JSON Schema at {path} (set DATAPRODUCTS_SHARED_DIR)")
    schema = json.loads(path.read_text())
    validator_class = jsonschema.validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)

    for label, document in (("as written", raw), ("with the defaults substituted", compose)):
        errors = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                  for e in validator.iter_errors(document)]
        assert not errors, f"docker-compose.yaml ({label}) is not valid Compose:\n" + "\n".join(errors)

    # the schema is strict enough to catch a typo, so passing it means something
    broken = json.loads(json.dumps(compose))
    broken["services"]["airflow-worker"]["comand"] = "celery worker"
    broken["services"]["postgres"]["depends_on"] = {"redis": {"condition": "service_up"}}
    assert len(list(validator.iter_errors(broken))) == 2


# --- (b) the services of issue 6 ---

def test_every_service_of_the_issue_exists_and_can_start(compose):
    services = compose["services"]
    assert set(REQUIRED_SERVICES) <= set(services), set(REQUIRED_SERVICES) - set(services)
    assert set(components(compose).values()) >= {"api-server", "scheduler", "dag-processor",
                                                  "triggerer", "celery worker"}

    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            target = services[dependency]
            assert not target.get("profiles") or service.get("profiles"), \
                f"{name} depends on {dependency}, which only starts with its profile"
            if rule["condition"] == "service_healthy":
                assert "healthcheck" in target, f"{name} waits for {dependency} to be healthy"
            if rule["condition"] == "service_completed_successfully":
                assert target.get("restart") == "no", f"{dependency} must be a one-shot"
        one_shot = service.get("restart") == "no" or service.get("profiles")
        assert one_shot or "healthcheck" in service, f"{name} has no healthcheck"
        if not one_shot:
            assert service.get("restart") == "always", name

    worker = services["airflow-worker"]
    assert "container_name" not in worker and "ports" not in worker, \
        "a fixed container name or host port would break `--scale airflow-worker=N`"
    for name, service in services.items():
        assert "container_name" not in service, f"{name}: container names collide between stacks"

    # the image installs the package; products and plugins are mounted into every Airflow service
    common = compose["x-airflow-common"]
    assert common["build"]["context"] == "." and (REPO / common["build"]["dockerfile"]).is_file()
    for name, service in airflow_services_of(compose).items():
        mounts = mount_targets(service)
        assert mounts.get("/opt/airflow/products") == "./products", name
        assert mounts.get("/opt/airflow/plugins") == "./plugins", name
        assert service["environment"]["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/airflow/products"


# --- (c) the same commands and settings as the native integration test ---

def test_airflow_components_run_what_the_native_integration_test_runs(compose, native):
    native_env, ran, started = native
    services = compose["services"]
    stack = components(compose)

    # the commands
    assert ("db", "migrate") in ran, ran
    init_script = " ".join(command_words(services["airflow-init"]["command"]))
    assert "airflow db migrate" in init_script
    native_components = {}
    for args, extra_env in started:
        subcommand, options = split_command(list(args))
        native_components[subcommand] = options
        assert set(extra_env) == (set(NATIVE_WORKER_ONLY) if subcommand == "celery worker"
                                  else set()), (subcommand, set(extra_env))
    assert [a for a, _ in started].count(("celery", "worker", "--celery-hostname", "worker2@%h")) == 1
    compose_only = set(stack.values()) - set(native_components)
    assert compose_only == set(COMPOSE_ONLY_COMPONENTS), (
        f"components of the stack that the native test does not run: {compose_only}; "
        f"allowed: {set(COMPOSE_ONLY_COMPONENTS)}")
    missing_components = set(native_components) - set(stack.values())
    assert not missing_components, f"the native test runs {missing_components}, the stack does not"

    for name, subcommand in stack.items():
        _, options = split_command(command_words(services[name]["command"]))
        assert not options, f"{name}: give options as settings, like the others: {options}"
        for option, value in native_components.get(subcommand, {}).items():
            if (subcommand, option) in NATIVE_ONLY_OPTIONS:
                continue
            setting = NATIVE_OPTIONS_AS_SETTINGS.get(option)
            assert setting, f"the native test runs `{subcommand} {option}`: match or allow-list it"
            assert native_env[setting] == value  # the option repeats the native setting
            assert setting in services[name]["environment"], f"{name} does not set {setting}"

    # the settings: every component has the same environment
    common_env = {k: str(v) for k, v in compose["x-airflow-common"]["environment"].items()}
    for name in stack:
        env = {k: str(v) for k, v in services[name]["environment"].items()}
        extras = set(env) - set(common_env)
        assert extras == set(PER_SERVICE_EXTRAS.get(name, {})), f"{name}: {extras}"
        assert {k: env[k] for k in common_env} == common_env, name

    native_keys, compose_keys = set(native_env), set(common_env)
    for allow_list in (DIFFERENT, LEFT_AT_DEFAULT):
        stale = set(allow_list) - native_keys
        assert not stale, f"allow-listed, but the native test does not set them: {stale}"
    assert not set(DIFFERENT) & set(LEFT_AT_DEFAULT)
    stale = set(COMPOSE_ONLY) - compose_keys
    assert not stale, f"allow-listed as compose-only, but docker-compose.yaml does not set: {stale}"

    left_out = (native_keys & set(LEFT_AT_DEFAULT)) & compose_keys
    assert not left_out, f"allow-listed as left at the default, but set in the stack: {left_out}"
    unexplained = (compose_keys - native_keys) - set(COMPOSE_ONLY)
    assert not unexplained, f"settings of the stack that the native test lacks: {unexplained}"
    same = native_keys - set(DIFFERENT) - set(LEFT_AT_DEFAULT)
    assert same, "nothing left to compare"
    mismatched = {k: (native_env[k], common_env.get(k)) for k in same if common_env.get(k) != native_env[k]}
    assert not mismatched, f"settings that must equal the native test's (native, compose): {mismatched}"
    absent = set(DIFFERENT) - compose_keys
    assert not absent, f"settings the stack must set (with its own value): {absent}"

    # ... and what must still hold for the settings that differ
    api = services["airflow-apiserver"]
    port = int(common_env["AIRFLOW__API__PORT"])
    assert common_env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert common_env["AIRFLOW__API__HOST"] == "0.0.0.0"
    published = published_port(api, port)
    base = urlsplit(common_env["AIRFLOW__API__BASE_URL"])
    assert (base.hostname, base.port) == ("localhost", published)
    execution, native_execution = (urlsplit(common_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]),
                                   urlsplit(native_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"]))
    assert (execution.hostname, execution.port) == ("airflow-apiserver", port)
    assert execution.path == native_execution.path == "/execution/"
    db, native_db = (urlsplit(common_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]),
                     urlsplit(native_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]))
    assert db.scheme == native_db.scheme == "postgresql+psycopg2"
    assert db.hostname in services and services[db.hostname]["image"].startswith("postgres:")
    assert db.path == "/" + services[db.hostname]["environment"]["POSTGRES_DB"]
    assert common_env["AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION"] == "true"
    mounts = mount_targets(compose["x-airflow-common"])
    assert mounts[common_env["AIRFLOW__CORE__DAGS_FOLDER"]] == "./products"
    # the data folder is S3 in both (MinIO here, moto in the test): staging shared by workers
    data_folder = urlsplit(common_env["AIRFLOW__DATAPRODUCTS__DATA_FOLDER"])
    assert data_folder.scheme == "s3" == urlsplit(native_env["AIRFLOW__DATAPRODUCTS__DATA_FOLDER"]).scheme
    assert f"local/{data_folder.hostname}" in " ".join(services["minio-init"]["command"]), \
        "minio-init must create the data folder's bucket"
    assert "/opt/airflow/data" not in mounts


def test_settings_are_real_options_and_point_at_services_of_the_stack(compose):
    from airflow.configuration import conf

    known = {(section, option) for section, description in conf.configuration_description.items()
             for option in description.get("options", {})}
    known |= CELERY_PROVIDER_OPTIONS
    config_doc = (REPO / "dag_factory" / "config.py").read_text()
    known |= {("dataproducts", key) for key in re.findall(r"^\| (\w+)\s+\|", config_doc, re.M)
              if key != "key"}
    assert ("dataproducts", "api_conn_id") in known

    services = compose["services"]
    for name, service in airflow_services_of(compose).items():
        for key in service.get("environment", {}):
            match = re.fullmatch(r"AIRFLOW__([A-Z0-9_]+?)__([A-Z0-9_]+)", key)
            if match:
                option = (match[1].lower(), match[2].lower())
                assert option in known, f"{name}: {key} is not an Airflow option"

    env = compose["x-airflow-common"]["environment"]
    users = dict(entry.split(":")[:2] for entry in env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"].split(","))
    assert users == {"admin": "admin", "slo-reader": "viewer"}
    passwords_file = Path(env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    assert str(passwords_file.parent) in mount_targets(compose["x-airflow-common"]), \
        "the passwords file airflow-init writes must be on a volume the api-server shares"
    init_env = services["airflow-init"]["environment"]
    assert init_env["_AIRFLOW_ADMIN_USER"] == "admin"

    def expose(service: str) -> set[int]:
        s = services[service]
        return {int(p) for p in s.get("expose", [])} | {
            int(str(p).rpartition(":")[2]) for p in s.get("ports", [])}

    smtp = json.loads(env["AIRFLOW_CONN_SMTP_DEFAULT"])
    assert smtp["conn_type"] == "smtp" and smtp["host"] == "mailpit"
    assert smtp["port"] in expose("mailpit")
    assert smtp["extra"]["disable_ssl"] is True and smtp["extra"]["disable_tls"] is True

    api_conn = json.loads(env["AIRFLOW_CONN_" + env["AIRFLOW__DATAPRODUCTS__API_CONN_ID"].upper()])
    host = urlsplit(api_conn["host"])
    assert api_conn["conn_type"] == "http" and api_conn["login"] == "slo-reader"
    assert (host.hostname, host.port) == ("airflow-apiserver", int(env["AIRFLOW__API__PORT"]))
    assert api_conn["password"] == init_env["_SLO_READER_PASSWORD"]

    for conn_id in ("AWS_DEFAULT", "AWS_LANDING"):
        aws = json.loads(env[f"AIRFLOW_CONN_{conn_id}"])
        endpoint = urlsplit(aws["extra"]["endpoint_url"])
        assert aws["conn_type"] == "aws" and endpoint.hostname == "minio"
        assert endpoint.port in expose("minio")
        assert (aws["login"], aws["password"]) == (services["minio"]["environment"]["MINIO_ROOT_USER"],
                                                    services["minio"]["environment"]["MINIO_ROOT_PASSWORD"])
    buckets = " ".join(command_words(services["minio-init"]["command"]))
    for bucket in ("landing", "products", "dataproducts"):  # demo input, exports, S3 data folder
        assert f"local/{bucket}" in buckets

    transport = json.loads(env["AIRFLOW__OPENLINEAGE__TRANSPORT"])
    url = urlsplit(transport["url"])
    assert transport["type"] == "http" and transport["endpoint"] == "api/v1/lineage"
    assert url.hostname == "marquez-api"
    assert url.port == int(services["marquez-api"]["environment"]["MARQUEZ_PORT"])
    marquez_db = services["marquez-api"]["environment"]["POSTGRES_HOST"]
    assert services[marquez_db]["environment"]["POSTGRES_DB"] == "marquez"
    assert services["marquez-web"]["environment"]["MARQUEZ_HOST"] == "marquez-api"


# --- (d) the Dockerfile ---

def dockerfile_instructions() -> list[tuple[str, str]]:
    lines, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1]
            continue
        current += line
        instruction, _, rest = current.strip().partition(" ")
        lines.append((instruction.upper(), rest.strip()))
        current = ""
    return lines


def test_dockerfile_installs_this_package_on_the_pinned_airflow(compose):
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pin = next(Requirement(r) for r in project["dependencies"] if Requirement(r).name == "apache-airflow")
    floor = next(Version(s.version) for s in pin.specifier if s.operator == ">=")

    instructions = dockerfile_instructions()
    args = {}
    for instruction, rest in instructions:
        if instruction == "FROM":
            break
        if instruction == "ARG" and "=" in rest:
            name, value = rest.split("=", 1)
            args[name] = value
    image = next(rest for instruction, rest in instructions if instruction == "FROM")
    image = re.sub(r"\$\{(\w+)\}", lambda m: args[m[1]], image)
    repository, _, tag = image.partition(":")
    assert repository == "apache/airflow", "start from the official Airflow image"
    version, python = re.fullmatch(r"(\d+\.\d+\.\d+)-python(\d+\.\d+)", tag).groups()
    assert Version(version) in pin.specifier, f"image {tag} outside the pin {pin}"
    assert Version(version) == floor, f"image Airflow {version}, pyproject.toml pins >= {floor}"
    assert Version(python + ".0") in SpecifierSet(project["requires-python"])
    assert python == "3.11"

    copied = {}
    for instruction, rest in instructions:
        if instruction == "COPY":
            words = [w for w in rest.split() if not w.startswith("--")]
            for source in words[:-1]:
                copied[source] = words[-1]
    for needed in ("pyproject.toml", "README.md", "dag_factory", "products", "plugins"):
        assert needed in copied, f"the Dockerfile does not COPY {needed}"
        assert (REPO / needed).exists()
    assert project["readme"] == "README.md"
    package_dir = copied["pyproject.toml"].rstrip("/")
    assert copied["dag_factory"].rstrip("/") == f"{package_dir}/dag_factory"
    installs = [rest for instruction, rest in instructions
                if instruction == "RUN" and "pip install" in rest]
    assert len(installs) == 1, installs
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in installs[0], "keep the image's Airflow"
    assert re.search(rf"\s{re.escape(package_dir)}(\s|$)", installs[0]), "install the package itself"
    assert "ARG AIRFLOW_VERSION" in [f"{i} {r}" for i, r in instructions[instructions.index(
        next(x for x in instructions if x[0] == "FROM")):]], "redeclare the ARG after FROM"

    ignored = [p.strip() for p in DOCKERIGNORE.read_text().splitlines()
               if p.strip() and not p.startswith("#")]
    for source in copied:
        assert not any(fnmatch.fnmatch(source, p) for p in ignored), f".dockerignore drops {source}"
    for must_stay_out in (".git", ".venv", ".env", ".demo", "tests"):
        assert any(fnmatch.fnmatch(must_stay_out, p) for p in ignored), must_stay_out

    assert compose["x-airflow-common"]["build"]["dockerfile"] == DOCKERFILE.name


# --- .env.example ---

def test_env_example_lists_every_variable_with_the_compose_default(raw):
    used = variables(raw)
    without_default = sorted(name for name, default in used.items() if default is None)
    assert not without_default, f"give these a default so the stack starts without .env: {without_default}"
    example = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            example[name.strip()] = value
    assert set(example) == set(used), (
        f"only in docker-compose.yaml: {sorted(set(used) - set(example))}; "
        f"only in .env.example: {sorted(set(example) - set(used))}")
    differing = {name: (example[name], used[name]) for name in used if example[name] != used[name]}
    assert not differing, f".env.example vs the compose default: {differing}"
    assert interpolate("${AIRFLOW_PORT:-8080}", {"AIRFLOW_PORT": "9090"}) == "9090"
