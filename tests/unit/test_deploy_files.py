"""The Dockerfile and compose.yaml, checked without a Docker engine.

- compose.yaml's values pass the service's own settings validation, in the production
  profile; it has no default for a password or a token, and compose refuses to start
  without them. scripts/lint validates it against the Compose specification's JSON schema
  (the copy that check-jsonschema ships); here, that check is shown to catch a mistake.
- The Dockerfile is parsed by BuildKit's own parser (the `dockerfile` package), and every
  file it copies exists and survives .dockerignore; scripts/lint runs hadolint on it.
- The service is started from exactly the files the Dockerfile copies, the way its CMD starts
  it, and both healthcheck commands are run against it (tests/system/test_deploy_files.py).
- requirements.txt, which the image installs from, pins every dependency of pyproject.toml.

That the image builds and runs, and that compose.yaml starts it with PostgreSQL, needs an
engine and the network: scripts/container-check proves those in CI, with podman.
"""

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import dockerfile  # type: ignore[import-not-found]  # BuildKit's parser; ships no stubs
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from ruamel.yaml import YAML

from api.settings import load_settings
from harness import ROOT

COMPOSE = ROOT / "compose.yaml"
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
NODE_MODULES = ROOT / "web" / "graphiql" / "node_modules"
REQUIREMENTS = ROOT / "requirements.txt"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = YAML(typ="safe").load(COMPOSE.read_text())
    return loaded


class MissingVariable(ValueError):
    """`${NAME:?message}` met an unset or empty NAME: compose stops with `message`."""


_VARIABLE = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:-|:\?)([^}]*))?\}")


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Resolve `${NAME}`, `${NAME:-default}` and `${NAME:?error}` the way Compose does."""
    env = env or {}

    def replace(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3) or ""
        if env.get(name):
            return env[name]
        if operator == ":?":
            raise MissingVariable(f"{name}: {argument}")
        return argument

    return _VARIABLE.sub(replace, value)


# What an operator must supply; compose.yaml holds no default for either.
REQUIRED = {"POSTGRES_PASSWORD": "s3cret-from-env", "METRICS_TOKEN": "token-from-env"}


def service_env(service: str, env: dict[str, str]) -> dict[str, str]:
    """A service's environment as compose would give it, interpolated from `env`."""
    variables = compose()["services"][service]["environment"]
    return {name: interpolate(str(value), env) for name, value in variables.items()}


def instructions() -> list[dockerfile.Command]:
    return list(dockerfile.parse_file(str(DOCKERFILE)))


def stages() -> list[list[dockerfile.Command]]:
    result: list[list[dockerfile.Command]] = []
    for command in instructions():
        if command.cmd == "FROM":
            result.append([])
        result[-1].append(command)
    return result


def final_stage_copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of each COPY from the build context in the final stage."""
    return [
        (list(c.value[:-1]), c.value[-1])
        for c in stages()[-1]
        if c.cmd == "COPY" and not any(f.startswith("--from") for f in c.flags)
    ]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for token in re.split(r"(\*\*/?|\*|\?)", pattern.strip("/")):
        if token in ("**", "**/"):
            parts.append("(.*/)?" if token == "**/" else ".*")
        elif token == "*":
            parts.append("[^/]*")
        elif token == "?":
            parts.append("[^/]")
        elif token.startswith("[") or not token:
            parts.append(token)
        else:
            parts.append(re.escape(token).replace(r"\[", "[").replace(r"\]", "]"))
    return re.compile("".join(parts))


def dockerignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (Docker's rule: the last
    pattern matching the path or one of its parent folders decides)."""
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        regex = _pattern_regex(pattern.lstrip("!"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not negated
    return ignored


def run(*command: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603
        command, capture_output=True, text=True, timeout=120, check=False, **kwargs
    )


# compose.yaml


def test_the_schema_check_catches_mistakes(tmp_path: Path) -> None:
    broken = COMPOSE.read_text().replace("condition: service_healthy", "condition: when_ready")
    (tmp_path / "compose.yaml").write_text(broken)
    result = run(
        sys.executable,
        "-m",
        "check_jsonschema",
        "--builtin-schema",
        "vendor.compose-spec",
        str(tmp_path / "compose.yaml"),
    )
    assert result.returncode == 1
    assert "when_ready" in result.stdout + result.stderr


def test_compose_runs_app_on_healthy_postgres_with_a_named_volume() -> None:
    spec = compose()
    app, db = spec["services"]["app"], spec["services"]["db"]
    assert db["image"] == "postgres:15"
    assert app["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    volume, mount = db["volumes"][0].split(":")
    assert volume in spec["volumes"]
    assert mount == "/var/lib/postgresql/data"
    assert app["build"] == "."


def test_compose_environment_is_valid_for_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    app = compose()["services"]["app"]
    env, db_env = service_env("app", REQUIRED), service_env("db", REQUIRED)

    url = env["DATABASE_URL"]
    expected = (
        f"postgresql+asyncpg://{db_env['POSTGRES_USER']}:{db_env['POSTGRES_PASSWORD']}"
        f"@db:5432/{db_env['POSTGRES_DB']}"
    )
    assert url == expected
    assert env["AUTO_MIGRATE"] == "true"

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()  # raises InvalidSettings on any value the service refuses
    assert settings.auto_migrate
    assert settings.log_format == "json"
    assert settings.trusted_proxies == []
    # The production profile, with what it then requires.
    assert settings.profile == "production"
    assert settings.metrics_token is not None
    assert settings.metrics_token.get_secret_value() == REQUIRED["METRICS_TOKEN"]
    assert (settings.graphiql, settings.graphql_introspection, settings.api_docs) == (
        False,
        False,
        False,
    )

    # Metrics from several workers are summed in a directory that starts empty every time.
    multiproc = env["PROMETHEUS_MULTIPROC_DIR"]
    assert any(multiproc.startswith(t.rstrip("/") + "/") for t in app["tmpfs"])


@pytest.mark.parametrize(
    ("service", "missing"),
    [("app", "POSTGRES_PASSWORD"), ("db", "POSTGRES_PASSWORD"), ("app", "METRICS_TOKEN")],
)
def test_compose_refuses_to_start_without_a_secret(service: str, missing: str) -> None:
    """No default password or token: compose stops, naming the variable, if one is unset."""
    text = COMPOSE.read_text()
    assert "change-me" not in text
    uses = re.findall(rf"\$\{{{missing}(:?[-?]?)", text)
    assert set(uses) == {":?"}, f"{missing} must be required (${{{missing}:?…}}) everywhere"
    given = {name: value for name, value in REQUIRED.items() if name != missing}
    for absent in (given, {**given, missing: ""}):
        with pytest.raises(MissingVariable, match=missing):
            service_env(service, absent)


def test_compose_publishes_the_port_the_image_serves_on_loopback_only() -> None:
    (mapping,) = compose()["services"]["app"]["ports"]
    host, published, target = mapping.split(":")
    assert host == "127.0.0.1"
    (expose,) = [c.value[0] for c in instructions() if c.cmd == "EXPOSE"]
    (cmd,) = [c.value for c in instructions() if c.cmd == "CMD"]
    assert target == expose == cmd[cmd.index("--port") + 1] == published


# Dockerfile


def test_dockerfile_builds_graphiql_with_npm_ci_then_a_slim_python_image() -> None:
    node, python = stages()
    assert node[0].value == ("node:20-slim", "AS", "graphiql")
    (npm,) = [c.value[0] for c in node if c.cmd == "RUN"]
    assert npm.startswith("npm ci")
    # Without legacy-peer-deps, npm ci refuses the explorer plugin's peer range (ERESOLVE).
    copied = {source for c in node if c.cmd == "COPY" for source in c.value[:-1]}
    assert "web/graphiql/.npmrc" in copied
    npmrc = (ROOT / "web" / "graphiql" / ".npmrc").read_text().splitlines()
    assert "legacy-peer-deps=true" in npmrc
    assert python[0].value == ("python:3.11-slim",)
    (from_node,) = [c for c in python if any(f == "--from=graphiql" for f in c.flags)]
    # The node_modules of the first stage land where the service looks for them.
    assert from_node.value == ("/build/node_modules", "./web/graphiql/node_modules")
    assert any(c.cmd == "RUN" and "pip install" in c.value[0] for c in python)


def test_dockerfile_runs_uvicorn_as_a_numeric_non_root_user() -> None:
    final = stages()[-1]
    users = [c.value[0] for c in final if c.cmd == "USER"]
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)
    (cmd,) = [c for c in final if c.cmd == "CMD"]
    assert cmd.json, "CMD must be in exec form so uvicorn gets the signals"
    assert list(cmd.value[:4]) == ["uvicorn", "main:app", "--host", "0.0.0.0"]  # noqa: S104
    # X-Forwarded-For is for the app to judge (TRUSTED_PROXIES), never uvicorn's loopback rule.
    assert "--no-proxy-headers" in cmd.value
    # USER comes after every RUN, so nothing later runs as root.
    last_user = max(i for i, c in enumerate(final) if c.cmd == "USER")
    assert all(i < last_user for i, c in enumerate(final) if c.cmd == "RUN")


def env_of(stage: list[dockerfile.Command]) -> dict[str, str]:
    """The variables a stage's ENV lines set (their `KEY=value` pairs, parsed)."""
    pairs = [c.value for c in stage if c.cmd == "ENV"]
    return {
        key: value for values in pairs for key, value in zip(values[::2], values[1::2], strict=True)
    }


def test_image_keeps_its_sqlite_database_in_a_volume_its_user_owns() -> None:
    final = stages()[-1]
    url = env_of(final)["DATABASE_URL"]
    assert url == "sqlite+aiosqlite:////data/secrets.db"
    folder = url.removeprefix("sqlite+aiosqlite:///").rsplit("/", 1)[0]
    volumes = [v for c in final if c.cmd == "VOLUME" for v in c.value]
    assert folder in volumes
    # Docker gives a new volume the owner of the image's folder: the service's user.
    uid_gid = [c.value[0] for c in final if c.cmd == "USER"][-1]
    runs = " ".join(c.value[0] for c in final if c.cmd == "RUN")
    assert f"mkdir {folder}" in runs
    assert f"chown {uid_gid} {folder}" in runs


def test_image_installs_the_pinned_requirements() -> None:
    runs = [c.value[0] for c in stages()[-1] if c.cmd == "RUN" and "pip install" in c.value[0]]
    assert any("--requirement requirements.txt" in run for run in runs)
    (project,) = [run for run in runs if re.search(r"pip install .* \.( |$)", run)]
    assert "--constraint requirements.txt" in project


def pins() -> dict[str, list[tuple[str, Requirement]]]:
    """requirements.txt's pins by package name: (version, the line as a requirement)."""
    result: dict[str, list[tuple[str, Requirement]]] = {}
    for line in REQUIREMENTS.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line)
            ((operator, version),) = [(s.operator, s.version) for s in requirement.specifier]
            assert operator == "==", line
            result.setdefault(canonicalize_name(requirement.name), []).append(
                (version, requirement)
            )
    return result


def test_requirements_pin_every_dependency_of_pyproject() -> None:
    """Run scripts/lock when this fails: pyproject.toml and requirements.txt disagree."""
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = pins()
    # The image's interpreter: CPython 3.11 on Linux (the rest as on this machine).
    image = {
        "python_version": "3.11",
        "python_full_version": "3.11.2",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
    }
    for dependency in map(Requirement, dependencies):
        versions = [
            version
            for version, line in pinned.get(canonicalize_name(dependency.name), [])
            if line.marker is None or line.marker.evaluate(image)
        ]
        assert len(versions) == 1, f"{dependency.name} has no pin for the image"
        assert dependency.specifier.contains(versions[0], prereleases=True), (
            f"{dependency.name}=={versions[0]} does not satisfy {dependency}"
        )


def test_dockerfile_copies_exist_and_survive_dockerignore() -> None:
    copied = [source for sources, _ in final_stage_copies() for source in sources]
    node_copies = [c.value[:-1] for c in stages()[0] if c.cmd == "COPY"]
    for source in [*copied, *(s for sources in node_copies for s in sources)]:
        assert (ROOT / source).exists(), source
        assert not dockerignored(source), f"{source} is excluded by .dockerignore"
    for secret_file in (
        "secrets.db",
        ".venv/bin/python",
        ".git/config",
        "web/graphiql/node_modules/react/index.js",
    ):
        assert dockerignored(secret_file), secret_file
    assert dockerignored("api/__pycache__/app.cpython-311.pyc")


def test_dockerfile_copies_everything_the_package_needs() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    tops = {name.split(".")[0] for name in project["tool"]["setuptools"]["packages"]}
    modules = {f"{name}.py" for name in project["tool"]["setuptools"]["py-modules"]}
    copied = {source for sources, _ in final_stage_copies() for source in sources}
    needed = tops | modules | {project["project"]["readme"], "pyproject.toml"}
    needed |= {"alembic.ini", "alembic"}  # migrations run from the source tree on start
    assert needed <= copied, needed - copied


def test_graphiql_lock_file_is_usable_by_npm_ci() -> None:
    folder = ROOT / "web" / "graphiql"
    manifest = json.loads((folder / "package.json").read_text())
    lock = json.loads((folder / "package-lock.json").read_text())
    assert lock["lockfileVersion"] >= 2
    assert lock["packages"][""]["dependencies"] == manifest["dependencies"]
    for name, version in manifest["dependencies"].items():
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
