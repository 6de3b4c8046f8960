"""esi-cli: ``fetch`` of 3 secrets as a whole process next to ``python -c pass``; imports; the bundle."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bench import manifests
from bench.environment import LOG_DIR, REPO, Environment
from bench.federation_bench import Federation
from bench.startup import ensure_bundle, import_profile, interpreter_of, median_wall_times

RUNS = 15
BUNDLE_RUNS = 9


@dataclass(frozen=True)
class CliNumbers:
    """Medians in seconds; the bundle's are None when it could not be built (``bundle_skipped`` says why)."""

    fetch_s: float
    python_pass_s: float
    python_pass_binary_s: float
    version_s: float
    interpreter: str
    interpreter_binary: str
    runs: int
    importtime: dict[str, Any]
    bundle_version_s: float | None = None
    bundle_skipped: str | None = None


def fetch_environment(env: Environment, federation: Federation, out_dir: Path) -> dict[str, str]:
    """esi-cli's configuration as esi-init gets it: ESI_* variables, 3 files from ``vault-prod``."""
    files = [f"{key}.{prop}={key}.{prop}" for key, prop in manifests.REFERENCES]
    variables = {
        "ESI_SERVER": f"https://{federation.target.host}:{federation.target.port}",
        "ESI_TOKEN_FILE": str(federation.token_file),
        "ESI_CA_FILE": str(federation.client_ca_file),
        "ESI_SERVER_CA_FILE": str(env.tls.ca_file),
        "ESI_CLUSTER": manifests.CLUSTER,
        "ESI_STORE": manifests.FAKE_STORE,
        "ESI_FILES": "\n".join(files),
        "ESI_DIR": str(out_dir),
    }
    return {**startup_environment(env), **variables}


def startup_environment(env: Environment) -> dict[str, str]:
    """The environment of every timed process: a pod's, so bytecode is cached after the first run."""
    variables = env.child_env()
    # An image ships compiled bytecode; without a cache every run would compile esi-cli again.
    variables.pop("PYTHONDONTWRITEBYTECODE", None)
    return variables


def run(env: Environment, federation: Federation, runs: int = RUNS, build_bundle: bool = True) -> CliNumbers:
    """Measure the medians of ``runs`` interleaved runs of each command (after two warm-ups)."""
    esi_cli = Path(env.program("esi-cli"))
    interpreter = interpreter_of(esi_cli)
    out_dir = env.work / "secrets-out"
    out_dir.mkdir()
    plain = startup_environment(env)
    medians = median_wall_times(
        {
            "fetch": ([str(esi_cli), "fetch"], fetch_environment(env, federation, out_dir)),
            "pass": ([interpreter.path, "-c", "pass"], plain),
            "pass_binary": ([interpreter.binary, "-c", "pass"], plain),
            "version": ([str(esi_cli), "version"], plain),
        },
        runs,
    )
    numbers = CliNumbers(
        fetch_s=medians["fetch"],
        python_pass_s=medians["pass"],
        python_pass_binary_s=medians["pass_binary"],
        version_s=medians["version"],
        interpreter=interpreter.path,
        interpreter_binary=interpreter.binary,
        runs=runs,
        importtime=import_profile(interpreter.path, "cli.main", REPO),
    )
    if not build_bundle:
        return replace(numbers, bundle_skipped="not built: --quick")
    executable, reason = ensure_bundle(REPO, LOG_DIR / "build-esi-cli.log")
    if executable is None:
        return replace(numbers, bundle_skipped=reason)
    bundle = median_wall_times({"version": ([str(executable), "version"], plain)}, BUNDLE_RUNS)
    return replace(numbers, bundle_version_s=bundle["version"])
