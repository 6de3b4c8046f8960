"""plan(pod, spec, settings) -> the JSON Patch that injects esi-init and its volumes. Pure, deterministic.

The same pod and spec always give the same ops, in the same order, so a retried review gets the same
patch. The status annotation written here makes a second pass a no-op.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cli import environment
from cli.refs import join_lines
from webhook import annotations as notes
from webhook.annotations import InjectionSpec
from webhook.errors import BadReview, PodRejected
from webhook.patches import PatchOp, extend_array, insert_into_array, pointer, replace, set_member
from webhook.settings import Settings

SECRETS_VOLUME = "esi-secrets"
TOKEN_VOLUME = "esi-token"  # noqa: S105  # a volume name, not a credential
BIN_VOLUME = "esi-bin"
INIT_CONTAINER = "esi-init"
REFRESH_CONTAINER = "esi-refresh"
TOKEN_DIR = "/var/run/secrets/esi"  # noqa: S105  # a path, not a credential
TOKEN_FILE = TOKEN_DIR + "/token"
CA_FILE = TOKEN_DIR + "/ca.crt"
BIN_DIR = "/esi/bin"
ESI_CLI = BIN_DIR + "/esi-cli"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"

INJECTED_VOLUMES = (SECRETS_VOLUME, TOKEN_VOLUME, BIN_VOLUME)
INJECTED_CONTAINERS = (INIT_CONTAINER, REFRESH_CONTAINER)

Json = dict[str, Any]


def plan(pod: Mapping[str, Any], spec: InjectionSpec, settings: Settings) -> list[PatchOp]:
    """Return the ops that inject ``spec`` into ``pod``.

    Raise :class:`BadReview` when the pod object is not shaped like a pod, and :class:`PodRejected`
    when the annotations cannot be honoured for this pod (unknown container, name clash, missing command).
    """
    pod_spec = _mapping(pod.get("spec"), "spec")
    containers = _named_list(pod_spec, "containers", required=True)
    init_containers = _named_list(pod_spec, "initContainers")
    volumes = _named_list(pod_spec, "volumes")
    server = _server(spec, settings)
    target_env = _target_env(spec, settings, server) if spec.env_mode else []
    targets = _targets(containers, spec, {item["name"] for item in target_env})
    _check_name_clashes(pod_spec, volumes, init_containers, containers)

    ops = extend_array(pod_spec, "/spec", "volumes", _volumes(spec, settings))
    injected = [_init_container(spec, settings, server, pod_spec)]
    if spec.refresh_interval is not None:
        injected.append(_refresh_container(spec, settings, server, pod_spec))
    if spec.init_first:
        ops += insert_into_array(pod_spec, "/spec", "initContainers", 0, injected)
    else:
        ops += extend_array(pod_spec, "/spec", "initContainers", injected)
    for index in targets:
        ops += _wrap_target(containers[index], f"/spec/containers/{index}", spec, target_env)
    metadata = _mapping(pod.get("metadata"), "metadata")
    ops += set_member(metadata, "/metadata", "annotations", notes.STATUS, notes.STATUS_INJECTED)
    return ops


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise BadReview(f"pod {where} must be an object")
    return value


def _named_list(parent: Mapping[str, Any], key: str, *, required: bool = False) -> list[Mapping[str, Any]]:
    items = parent.get(key)
    if items is None and not required:
        return []
    if not isinstance(items, list) or (required and not items):
        raise BadReview(f"pod spec.{key} must be a{' non-empty' if required else 'n'} array")
    for item in items:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise BadReview(f"every item of pod spec.{key} must be an object with a name")
    return items


def _server(spec: InjectionSpec, settings: Settings) -> str:
    if spec.server is None:
        if settings.server_url is None:
            raise PodRejected(
                f"annotation {notes.SERVER} is required: the webhook has no default --server-url"
            )
        return settings.server_url
    if spec.server not in settings.permitted_server_urls:
        raise PodRejected(f"annotation {notes.SERVER}: {spec.server} is not in the webhook's allow-list")
    return spec.server


def _targets(containers: Sequence[Mapping[str, Any]], spec: InjectionSpec, env_names: set[str]) -> list[int]:
    names = [container["name"] for container in containers]
    if spec.containers is None:
        targets = list(range(len(containers)))
    else:
        missing = [name for name in spec.containers if name not in names]
        if missing:
            raise PodRejected(
                f"annotation {notes.CONTAINERS}: no regular container named {', '.join(missing)} "
                f"(the pod has {', '.join(names)})"
            )
        targets = [index for index, name in enumerate(names) if name in spec.containers]
    if spec.env_mode:
        # Every container to fix at once, so that one edit of the pod spec is enough.
        without = [names[index] for index in targets if not containers[index].get("command")]
        if without:
            raise PodRejected(
                f"container{'s' if len(without) > 1 else ''} {', '.join(without)}: env mode (annotations "
                f"{notes.ENV_PREFIX}<NAME>) needs each wrapped container's command in the pod spec, because "
                "the webhook wraps it with esi-cli exec; set command to the image's entrypoint"
            )
    for index in targets:
        _check_target(containers[index], spec, env_names)
    return targets


def _check_target(container: Mapping[str, Any], spec: InjectionSpec, env_names: set[str]) -> None:
    name = container["name"]
    for key in ("volumeMounts", "env"):
        if container.get(key) is not None and not isinstance(container[key], list):
            raise BadReview(f"container {name}: {key} must be an array")
    taken_paths = _field_values(container.get("volumeMounts"), "mountPath")
    for path in _target_mount_paths(spec):
        if path in taken_paths:
            raise PodRejected(
                f"container {name} already mounts a volume at {path}, where the webhook mounts one"
            )
    if not spec.env_mode:
        return
    command = container.get("command")
    if not isinstance(command, list) or not all(isinstance(part, str) for part in command):
        raise BadReview(f"container {name}: command must be an array of strings")
    taken_env = _field_values(container.get("env"), "name")
    clashes = sorted(taken_env & env_names)
    if clashes:
        raise PodRejected(
            f"container {name} already sets {', '.join(clashes)}, which the webhook sets for esi-cli"
        )


def _field_values(items: object, key: str) -> set[str]:
    """The string values of ``key`` over a list of objects, tolerating any shape."""
    if not isinstance(items, list):
        return set()
    return {item[key] for item in items if isinstance(item, Mapping) and isinstance(item.get(key), str)}


def _target_mount_paths(spec: InjectionSpec) -> list[str]:
    if spec.env_mode:
        return [spec.secrets_dir, TOKEN_DIR, BIN_DIR]
    return [spec.secrets_dir]


def _check_name_clashes(
    pod_spec: Mapping[str, Any],
    volumes: Sequence[Mapping[str, Any]],
    init_containers: Sequence[Mapping[str, Any]],
    containers: Sequence[Mapping[str, Any]],
) -> None:
    clashing_volumes = sorted({volume["name"] for volume in volumes} & set(INJECTED_VOLUMES))
    if clashing_volumes:
        raise PodRejected(
            f"the pod already has a volume named {', '.join(clashing_volumes)}; the webhook reserves "
            f"{', '.join(INJECTED_VOLUMES)}"
        )
    names = {container["name"] for container in [*init_containers, *containers]}
    names |= _field_values(pod_spec.get("ephemeralContainers"), "name")
    clashing_containers = sorted(names & set(INJECTED_CONTAINERS))
    if clashing_containers:
        raise PodRejected(
            f"the pod already has a container named {', '.join(clashing_containers)}; the webhook reserves "
            f"{', '.join(INJECTED_CONTAINERS)}"
        )


def _volumes(spec: InjectionSpec, settings: Settings) -> list[Json]:
    volumes: list[Json] = [
        {"name": SECRETS_VOLUME, "emptyDir": {"medium": "Memory", "sizeLimit": settings.secrets_size_limit}},
        {
            "name": TOKEN_VOLUME,
            "projected": {
                "sources": [
                    {
                        "serviceAccountToken": {
                            "audience": settings.audience,
                            "expirationSeconds": settings.token_expiration,
                            "path": "token",
                        }
                    },
                    {
                        "configMap": {
                            "name": ROOT_CA_CONFIGMAP,
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                ]
            },
        },
    ]
    if spec.env_mode:
        volumes.append({"name": BIN_VOLUME, "emptyDir": {"sizeLimit": settings.bin_size_limit}})
    return volumes


def _base_env(spec: InjectionSpec, settings: Settings, server: str) -> list[Json]:
    env = [
        {"name": environment.SERVER, "value": server},
        {"name": environment.TOKEN_FILE, "value": TOKEN_FILE},
        {"name": environment.CA_FILE, "value": CA_FILE},
        {"name": environment.CLUSTER, "value": settings.cluster_name},
    ]
    if spec.store is not None:
        env.append({"name": environment.STORE, "value": spec.store})
    return env


def _lines(refs: Sequence[tuple[str, str]]) -> str:
    return join_lines([f"{name}={ref}" for name, ref in refs])


def _server_ca_env(settings: Settings) -> list[Json]:
    if settings.server_ca_pem is None:
        return []
    return [{"name": environment.SERVER_CA, "value": settings.server_ca_pem}]


def _init_env(spec: InjectionSpec, settings: Settings, server: str) -> list[Json]:
    env = _base_env(spec, settings, server)
    if spec.files:
        env.append({"name": environment.FILES, "value": _lines(spec.files)})
    if spec.env:
        # esi-init checks the env-mode references too, so that a denied secret stops the pod in its
        # init container, with the reason in its termination message, before the app is started.
        env.append({"name": environment.ENV, "value": _lines(spec.env)})
    env += [
        {"name": environment.DIR, "value": spec.secrets_dir},
        {"name": environment.FILE_MODE, "value": spec.file_mode},
    ]
    env += _server_ca_env(settings)
    if spec.env_mode:
        env.append({"name": environment.BIN_DIR, "value": BIN_DIR})
    return env


def _refresh_env(spec: InjectionSpec, settings: Settings, server: str) -> list[Json]:
    env = _base_env(spec, settings, server)
    env += [
        {"name": environment.FILES, "value": _lines(spec.files)},
        {"name": environment.DIR, "value": spec.secrets_dir},
        {"name": environment.FILE_MODE, "value": spec.file_mode},
    ]
    env += _server_ca_env(settings)
    env.append({"name": environment.REFRESH_INTERVAL, "value": spec.refresh_interval})
    return env


def _target_env(spec: InjectionSpec, settings: Settings, server: str) -> list[Json]:
    # What esi-cli exec needs in the application container: no ESI_FILES, no ESI_DIR (exec writes no files).
    env = _base_env(spec, settings, server)
    env.append({"name": environment.ENV, "value": _lines(spec.env)})
    return env + _server_ca_env(settings)


def _security_context(settings: Settings, pod_spec: Mapping[str, Any]) -> Json:
    defaults = settings.containers
    context: Json = {
        "runAsNonRoot": True,
        "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    pod_context = pod_spec.get("securityContext")
    pod_context = pod_context if isinstance(pod_context, Mapping) else {}
    # A pod that names its own non-root user keeps it in esi-init too: the files esi-init writes are then
    # owned by the user the application runs as, so the default mode 0440 lets the application read them.
    if not _non_root_id(pod_context.get("runAsUser")):
        context["runAsUser"] = defaults.run_as_user
    if not _non_root_id(pod_context.get("runAsGroup")):
        context["runAsGroup"] = defaults.run_as_group
    return context


def _non_root_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _resources(settings: Settings) -> Json:
    defaults = settings.containers
    return {
        "requests": {"cpu": defaults.cpu_request, "memory": defaults.memory_request},
        "limits": {"cpu": defaults.cpu_limit, "memory": defaults.memory_limit},
    }


def _fetch_container(
    name: str, env: list[Json], mounts: list[Json], settings: Settings, pod_spec: Any
) -> Json:
    return {
        "name": name,
        "image": settings.init_image,
        "imagePullPolicy": settings.containers.image_pull_policy,
        "command": ["esi-cli", "fetch"],
        "env": env,
        "resources": _resources(settings),
        "securityContext": _security_context(settings, pod_spec),
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "volumeMounts": mounts,
    }


def _fetch_mounts(spec: InjectionSpec) -> list[Json]:
    return [
        {"name": SECRETS_VOLUME, "mountPath": spec.secrets_dir},
        {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
    ]


def _init_container(spec: InjectionSpec, settings: Settings, server: str, pod_spec: Any) -> Json:
    mounts = _fetch_mounts(spec)
    if spec.env_mode:
        mounts.append({"name": BIN_VOLUME, "mountPath": BIN_DIR})
    env = _init_env(spec, settings, server)
    return _fetch_container(INIT_CONTAINER, env, mounts, settings, pod_spec)


def _refresh_container(spec: InjectionSpec, settings: Settings, server: str, pod_spec: Any) -> Json:
    env = _refresh_env(spec, settings, server)
    container = _fetch_container(REFRESH_CONTAINER, env, _fetch_mounts(spec), settings, pod_spec)
    # restartPolicy Always on an init container makes it a native sidecar: it starts after esi-init has
    # written the files, keeps running beside the application, and stops after it.
    container["restartPolicy"] = "Always"
    return container


def _wrap_target(
    container: Mapping[str, Any], path: str, spec: InjectionSpec, env: list[Json]
) -> list[PatchOp]:
    mounts: list[Json] = [{"name": SECRETS_VOLUME, "mountPath": spec.secrets_dir, "readOnly": True}]
    if not spec.env_mode:
        return extend_array(container, path, "volumeMounts", mounts)
    mounts += [
        {"name": TOKEN_VOLUME, "mountPath": TOKEN_DIR, "readOnly": True},
        {"name": BIN_VOLUME, "mountPath": BIN_DIR, "readOnly": True},
    ]
    ops = extend_array(container, path, "volumeMounts", mounts)
    # Each container gets its own copies, so that nothing downstream sees two containers share one list.
    ops += extend_array(container, path, "env", [dict(variable) for variable in env])
    command = [ESI_CLI, "exec", "--", *container["command"]]
    ops.append(replace(path + pointer("command"), command))
    return ops
