"""Env mode's hand-over: copy the self-contained esi-cli into the shared ``esi-bin`` volume.

In env mode the webhook wraps the application's command with ``/esi/bin/esi-cli exec --``; the
application image need not have Python, so ``esi-init`` (``esi-cli fetch`` with ``ESI_BIN_DIR`` set)
copies its own self-contained folder there first: the static launcher ``esi-cli`` and ``_internal/``, which
holds the embedded Python, the modules esi-cli imports and every library they load (docs/images.md).
Only the self-contained build (which sets ``sys.frozen``) can do that: a pip-installed esi-cli needs its
interpreter and cannot be copied alone.
"""

from __future__ import annotations

import os
import sys

from cli.errors import CliError, UsageError


def install_self(bin_dir: str) -> str:
    """Copy this self-contained build's folder into ``bin_dir``; return the copied executable's path."""
    if not getattr(sys, "frozen", False):
        raise UsageError(
            f"ESI_BIN_DIR / --bin-dir {bin_dir} asks to install esi-cli, but this esi-cli is not the "
            "self-contained build (hack/build-esi-cli.sh) and cannot be copied without its Python"
        )
    import shutil  # noqa: PLC0415 - only esi-init in env mode needs it

    # The embedded interpreter is _internal/esi-cli; the folder to copy is the one above _internal/,
    # with the launcher.
    source = os.path.dirname(os.path.dirname(os.path.abspath(sys.executable)))
    try:
        os.makedirs(bin_dir, exist_ok=True)
        # Entry by entry rather than copytree(source, bin_dir): bin_dir is the volume's root, which
        # belongs to root (an emptyDir), and copying the source folder's times and mode onto it is not
        # permitted to the pod's uid. Over whatever an earlier, interrupted attempt left behind.
        for entry in os.scandir(source):
            target = os.path.join(bin_dir, entry.name)
            if entry.is_dir(follow_symlinks=False):
                shutil.copytree(entry.path, target, symlinks=True, dirs_exist_ok=True)
            else:
                shutil.copy2(entry.path, target, follow_symlinks=False)
    except (OSError, shutil.Error) as exc:
        raise CliError(f"cannot copy esi-cli into {bin_dir}: {exc}") from None
    return os.path.join(bin_dir, "esi-cli")
