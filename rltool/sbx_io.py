"""Saving and loading SBX (JAX) models without pickles that can run code.

SBX's own ``save`` cloudpickles the policy, and with it every flax ``TrainState``, into the
model zip; SBX's ``load`` unpickles it, so a downloaded SBX zip can run anything. rltool saves
SBX models differently:

* the zip is written by SB3's ``save`` with every JAX/flax object left out (the policy, the
  PRNG keys, the entropy-coefficient module and state), so its ``data`` JSON holds only what
  an SB3 zip holds (spaces, counters, schedules);
* the train states (parameters, optimizer states, batch statistics) and PRNG keys go into an
  extra zip entry, :data:`STATE_ENTRY`, written with flax's msgpack serialization: plain arrays,
  numbers and strings, which cannot name a class or a function.

Loading rebuilds the model from the run's config and env (so the network code is rltool's and
SBX's, never the file's), checks the stored spaces with the restricted unpickler of
:mod:`rltool.safe_load`, restores the arrays from msgpack into the fresh model's structure
(refusing any shape that differs), and copies the plain counters (``num_timesteps``...). No
other pickled entry of the zip is ever decoded. A zip written by plain SBX has no
:data:`STATE_ENTRY`; it is refused unless the user passes ``--trust-pickles``.
"""

from __future__ import annotations

import io
import json
import warnings
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rltool.errors import ModelLoadError, UnsafeFileError, first_line

if TYPE_CHECKING:
    from rltool.config import ExperimentConfig

#: The zip entry holding the msgpack of an SBX model's train states and PRNG keys.
STATE_ENTRY = "sbx_state.msgpack"
_STATE_FORMAT = 1
_JAX_PACKAGES = ("jax", "jaxlib", "flax", "optax", "sbx")
# The only pickled entries an rltool SBX zip holds: decoded by the restricted unpickler, to check them.
_KEPT_PICKLED = ("observation_space", "action_space")
# Train states held by SBX policies, and by SBX models themselves.
_POLICY_STATES = ("actor_state", "qf_state", "vf_state", "key", "noise_key")
_MODEL_STATES = ("ent_coef_state", "key")
# Plain counters restored from the JSON ``data`` of the zip.
_COUNTERS = ("num_timesteps", "_n_updates", "_episode_num", "_num_timesteps_at_start", "_n_calls")


def is_sbx_model(model: Any) -> bool:
    """:return: whether ``model`` is an SBX (JAX) algorithm: an sbx class or a subclass of one (FusedPPO)."""
    return any(cls.__module__.split(".")[0] == "sbx" for cls in type(model).__mro__)


def _is_plain_json(value: Any) -> bool:
    """:return: whether SB3 would store ``value`` as JSON (not as a cloudpickle payload)."""
    if type(value).__module__.split(".")[0] in _JAX_PACKAGES:
        return False
    try:
        json.dumps(value)
    except (TypeError, ValueError, OverflowError):
        return False
    return True


def _state_tree(model: Any) -> dict[str, Any]:
    """:return: the msgpack-able pytrees of ``model``: its policy's train states and keys, its own."""
    policy = {name: getattr(model.policy, name) for name in _POLICY_STATES if hasattr(model.policy, name)}
    own = {name: getattr(model, name) for name in _MODEL_STATES if getattr(model, name, None) is not None}
    return {"format": _STATE_FORMAT, "policy": policy, "model": own}


def save_sbx_model(model: Any, path: Path) -> None:
    """Save an SBX model as an SB3-format zip without JAX pickles, plus its msgpack state entry.

    :param model: the SBX model.
    :param path: the zip to write (the caller makes the write atomic).
    """
    from flax import serialization

    # Keep plain JSON values (counters, flags) and the spaces; leave out everything SB3 would pickle:
    # the model is rebuilt from the config when loaded, so none of it is needed.
    excluded = [
        name for name, value in vars(model).items() if name not in _KEPT_PICKLED and not _is_plain_json(value)
    ]
    model.save(path, exclude=excluded)
    with zipfile.ZipFile(path, "a", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(STATE_ENTRY, serialization.to_bytes(_state_tree(model)))


def zip_has_sbx_state(path: Path) -> bool:
    """:return: whether ``path`` is a zip saved by :func:`save_sbx_model` (False if unreadable)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return STATE_ENTRY in archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _shapes(tree: Any) -> list[tuple[str, tuple[int, ...]]]:
    import jax
    import numpy as np

    leaves = jax.tree_util.tree_leaves_with_path(tree)
    return [(jax.tree_util.keystr(key), tuple(np.shape(leaf))) for key, leaf in leaves]


def _restore_state(path: Path, blob: bytes, model: Any) -> None:
    """Put the arrays of ``blob`` into the fresh ``model``; refuse structure or shapes that differ."""
    from flax import serialization

    template = _state_tree(model)
    try:
        raw = serialization.msgpack_restore(blob)
    except Exception as exc:
        raise ModelLoadError(
            f"{path}: entry {STATE_ENTRY} is not readable msgpack ({first_line(exc)})"
        ) from None
    if not isinstance(raw, dict) or raw.get("format") != _STATE_FORMAT:
        raise ModelLoadError(
            f"{path}: entry {STATE_ENTRY} is not an rltool SBX state (format {_STATE_FORMAT})"
        )
    try:
        restored = serialization.from_state_dict(template, raw)
    except Exception as exc:  # missing or extra networks
        raise ModelLoadError(
            f"{path}: the saved networks do not fit this config's model ({first_line(exc)}); "
            "was it trained with another algorithm or policy_kwargs?"
        ) from None
    want, have = _shapes(template), _shapes(restored)
    if want != have:
        diff = next(((w, h) for w, h in zip(want, have, strict=False) if w != h), (want[-1:], have[-1:]))
        raise ModelLoadError(
            f"{path}: the saved networks do not fit this config's model (config {diff[0]}, file {diff[1]}); "
            "was it trained with other policy_kwargs (net_arch)?"
        )
    for name, value in restored["policy"].items():
        setattr(model.policy, name, value)
    for name, value in restored["model"].items():
        setattr(model, name, value)


def load_sbx_model(
    path: Path,
    config: ExperimentConfig,
    env: Any,
    *,
    trust_pickles: bool = False,
    env_name: str | None = None,
    tensorboard_log: str | None = None,
) -> Any:
    """Load an SBX model: rebuild it from ``config`` on ``env``, then restore its arrays from msgpack.

    :param path: the model zip.
    :param config: the run's config (algorithm, policy, policy_kwargs, hyperparameters).
    :param env: the env the model will run on (its spaces are checked against the stored ones).
    :param trust_pickles: allow a plain SBX zip, loaded by SBX's own unpickling ``load``.
    :param env_name: env name for messages.
    :param tensorboard_log: TensorBoard folder of the rebuilt model.
    :return: the model, with ``env`` set.
    :raises UnsafeFileError: a plain SBX zip without ``trust_pickles``.
    :raises ModelLoadError: the file does not fit the config or env.
    """
    from rltool.algos import algo_class, build_model
    from rltool.safe_load import _checked_spaces, _read_zip

    path = Path(path)
    blob, meta = _read_zip(path)
    data = meta["data"]
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            state = archive.read(STATE_ENTRY) if STATE_ENTRY in archive.namelist() else None
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelLoadError(f"{path}: not a readable model zip ({first_line(exc)})") from None
    if state is None:
        if not trust_pickles:
            raise UnsafeFileError(
                f"{path}: SBX model without {STATE_ENTRY}: its entry 'policy' holds cloudpickled JAX train "
                "states and needs unpickling; refused. Re-run with --trust-pickles if you trust this file."
            )
        _checked_spaces(path, data, env.observation_space, env.action_space, env_name)
        try:
            return algo_class(config.algo, "sbx").load(io.BytesIO(blob), env=env)
        except Exception as exc:
            raise ModelLoadError(f"{path}: cannot load SBX {config.algo} model ({first_line(exc)})") from None
    # Only the restricted unpickler looks at the pickled spaces; nothing else pickled is decoded,
    # and an entry rltool never writes there is refused rather than ignored.
    unexpected = sorted(
        key
        for key, value in data.items()
        if isinstance(value, dict) and ":serialized:" in value and key not in _KEPT_PICKLED
    )
    if unexpected and not trust_pickles:
        raise UnsafeFileError(
            f"{path}: entry '{unexpected[0]}' of the SBX model needs unpickling (rltool's SBX zips pickle "
            "nothing but the spaces); refused. Re-run with --trust-pickles if you trust this file."
        )
    _checked_spaces(path, data, env.observation_space, env.action_space, env_name)
    # Built without a seed: seeding would reseed ``env`` with the config's seed (SB3's constructor does),
    # and the PRNG keys come from the file anyway.
    with warnings.catch_warnings():  # a 1-env eval env makes PPO warn about its training batch size
        warnings.filterwarnings("ignore", message=".*mini-batch size.*")
        model = build_model(replace(config, seed=None), env, tensorboard_log=tensorboard_log)
    model.seed = config.seed
    _restore_state(path, state, model)
    for name in _COUNTERS:
        value = data.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and hasattr(model, name):
            setattr(model, name, value)
    return model


def sbx_weights_finite(model: Any) -> bool:
    """:return: whether every parameter of an SBX model's train states is finite."""
    import jax
    import numpy as np

    for name in ("actor_state", "qf_state", "vf_state"):
        state = getattr(model.policy, name, None)
        if state is None:
            continue
        for leaf in jax.tree_util.tree_leaves(state.params):
            if not np.all(np.isfinite(np.asarray(leaf))):
                return False
    return True
