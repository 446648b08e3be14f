"""Load SB3 models, VecNormalize statistics and replay buffers without running foreign code.

An SB3 model zip stores its hyperparameters in a JSON file named ``data``. Values that are
not JSON (spaces, schedules, classes, numpy arrays) are stored as base64 cloudpickle
payloads (``{":type:": ..., ":serialized:": ...}``), and ``vecnormalize.pkl`` and replay
buffers are plain pickles. Unpickling a downloaded file can therefore run arbitrary code.

This module never hands a payload to the standard unpickler unless the user opted in
with ``--trust-pickles``. Instead, payloads are decoded by :class:`_RestrictedUnpickler`,
whose ``find_class`` only returns globals from an allow-list of data-only classes
(numpy arrays, gymnasium spaces, SB3 schedules/buffers/policy classes, ...). Model
entries that still cannot be decoded are replaced with stand-ins that are enough for
inference, or refused with :class:`~rltool.errors.UnsafeFileError`.

The torch weights inside a model zip are already loaded by SB3 with
``torch.load(..., weights_only=True)``, which has its own restricted unpickler.

One cohesive module (about 900 lines): the restricted unpickler, its allow-lists and every loader that
uses them (model zips, VecNormalize statistics, replay buffers) stay together, so the whole safety
boundary can be read and audited in one place.
"""

from __future__ import annotations

import base64
import functools
import importlib
import io
import json
import logging
import pickle
import re
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rltool.errors import ModelLoadError, UnsafeFileError
from rltool.schedules import FixedSchedule

if TYPE_CHECKING:
    import gymnasium as gym
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
    from stable_baselines3.common.type_aliases import GymEnv
    from stable_baselines3.common.vec_env import VecEnv, VecNormalize

logger = logging.getLogger(__name__)

PickleKind = Literal["vecnormalize", "replay_buffer"]

_TRUST_HINT = "Re-run with --trust-pickles if you trust this file."
# The JSON ``data`` file of a model is small; anything far bigger is not a genuine SB3 zip.
_MAX_DATA_BYTES = 256 * 1024 * 1024


# ---------------------------------------------------------------------------
# Restricted unpickling
# ---------------------------------------------------------------------------


class _RefusedGlobal(Exception):
    """Raised by the restricted unpickler for a global that is not on the allow-list."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _numpy_core() -> str:
    """Return the name of numpy's core package: ``numpy._core`` (numpy 2) or ``numpy.core`` (1.x)."""
    try:
        importlib.import_module("numpy._core.multiarray")
    except ImportError:
        return "numpy.core"
    return "numpy._core"


def _numpy_globals() -> dict[str, tuple[str, str]]:
    """Globals that numpy 1.x and 2.x pickles of arrays, dtypes, scalars and generators reference.

    :return: Map from the name found in a pickle to the (module, attribute) actually imported.
    """
    core = _numpy_core()
    table: dict[str, tuple[str, str]] = {
        "numpy.ndarray": ("numpy", "ndarray"),
        "numpy.dtype": ("numpy", "dtype"),
        # Random generators (seeded gymnasium spaces carry one).
        "numpy.random._pickle.__generator_ctor": ("numpy.random._pickle", "__generator_ctor"),
        "numpy.random._pickle.__bit_generator_ctor": ("numpy.random._pickle", "__bit_generator_ctor"),
        "numpy.random.bit_generator.SeedSequence": ("numpy.random.bit_generator", "SeedSequence"),
        "numpy.random.bit_generator.__pyx_unpickle_SeedSequence": (
            "numpy.random.bit_generator",
            "__pyx_unpickle_SeedSequence",
        ),
    }
    # numpy 1.x writes numpy.core.*, numpy 2.x writes numpy._core.*; both map to what is installed.
    for prefix in ("numpy.core", "numpy._core"):
        table[f"{prefix}.multiarray._reconstruct"] = (f"{core}.multiarray", "_reconstruct")
        table[f"{prefix}.multiarray.scalar"] = (f"{core}.multiarray", "scalar")
        table[f"{prefix}.numeric._frombuffer"] = (f"{core}.numeric", "_frombuffer")
    # numpy 2 names the bit generator class; gymnasium seeds every space with PCG64.
    table["numpy.random._pcg64.PCG64"] = ("numpy.random._pcg64", "PCG64")
    # Scalar type classes, e.g. the ``_dtype`` of an SB3 action noise.
    for name in (
        "bool_",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
    ):
        table[f"numpy.{name}"] = ("numpy", name)
    return table


def _same_name_table(names: Iterable[str]) -> dict[str, tuple[str, str]]:
    """Allow-list entries whose pickled name is also where the object lives.

    :param names: Dotted ``module.attribute`` names.
    :return: Map from each name to its (module, attribute).
    """
    table = {}
    for name in names:
        module, _, attribute = name.rpartition(".")
        table[name] = (module, attribute)
    return table


_SPACES = (
    "gymnasium.spaces.box.Box",
    "gymnasium.spaces.discrete.Discrete",
    "gymnasium.spaces.multi_discrete.MultiDiscrete",
    "gymnasium.spaces.multi_binary.MultiBinary",
    "gymnasium.spaces.dict.Dict",
    "gymnasium.spaces.tuple.Tuple",
)
_VECNORMALIZE = (
    "collections.OrderedDict",
    "stable_baselines3.common.running_mean_std.RunningMeanStd",
    "stable_baselines3.common.vec_env.vec_normalize.VecNormalize",
)
_REPLAY_BUFFER = (
    "collections.OrderedDict",
    "torch.device",
    "stable_baselines3.common.buffers.ReplayBuffer",
    "stable_baselines3.common.buffers.DictReplayBuffer",
    "stable_baselines3.common.buffers.NStepReplayBuffer",
    "stable_baselines3.her.her_replay_buffer.HerReplayBuffer",
    "stable_baselines3.her.goal_selection_strategy.GoalSelectionStrategy",
)
_MODEL_DATA = (
    "collections.OrderedDict",
    "collections.deque",
    "torch.device",
    "stable_baselines3.common.utils.FloatSchedule",
    "stable_baselines3.common.utils.ConstantSchedule",
    "stable_baselines3.common.utils.LinearSchedule",
    "stable_baselines3.common.type_aliases.TrainFreq",
    "stable_baselines3.common.type_aliases.TrainFrequencyUnit",
    "rltool.schedules.FixedSchedule",
)
# zips written by earlier rltool versions name the stand-in schedule by its old name
_RENAMED = {f"{__name__}.ConstantSchedule": ("rltool.schedules", "FixedSchedule")}


def _class_families() -> list[tuple[tuple[str, ...], Callable[[], tuple[type, ...]]]]:
    """Families of classes allowed in model data: (package prefixes, lazy base classes).

    A pickled class reference is accepted when its module lies in one of the packages
    (so only trusted, installed library modules are ever imported) and the class is a
    subclass of one of the bases. Instantiating any of them only runs library code.

    :return: The families.
    """

    def sb3_bases() -> tuple[type, ...]:
        from enum import Enum

        from stable_baselines3.common.buffers import BaseBuffer
        from stable_baselines3.common.noise import ActionNoise
        from stable_baselines3.common.policies import BasePolicy
        from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

        return (BasePolicy, BaseBuffer, BaseFeaturesExtractor, ActionNoise, Enum)

    def optimizers() -> tuple[type, ...]:
        import torch

        return (torch.optim.Optimizer,)

    def activations() -> tuple[type, ...]:
        import torch

        return (torch.nn.Module,)

    return [
        (("stable_baselines3", "sb3_contrib"), sb3_bases),
        (("torch.optim",), optimizers),
        (("torch.nn.modules.activation",), activations),
    ]


class _AllowList:
    """Decides which globals a restricted unpickler may return.

    :param exact: Map from the name in the pickle to the (module, attribute) to import.
    :param families: Optional class families, see :func:`_class_families`.
    """

    def __init__(
        self,
        exact: dict[str, tuple[str, str]],
        families: list[tuple[tuple[str, ...], Callable[[], tuple[type, ...]]]] | None = None,
    ) -> None:
        self.exact = exact
        self.families = families or []

    def resolve(self, module: str, name: str) -> Any:
        """Return the object for a pickled global, or raise :class:`_RefusedGlobal`.

        :param module: Module name written in the pickle.
        :param name: Attribute name written in the pickle.
        :return: The allowed object.
        """
        full = f"{module}.{name}"
        target = self.exact.get(full)
        if target is not None:
            try:
                return getattr(importlib.import_module(target[0]), target[1])
            except (ImportError, AttributeError):
                # E.g. a buffer class that the installed SB3 does not have.
                raise _RefusedGlobal(full) from None
        if name.isidentifier() and all(part.isidentifier() for part in module.split(".")):
            for packages, bases in self.families:
                if not any(module == pkg or module.startswith(pkg + ".") for pkg in packages):
                    continue
                try:
                    obj = getattr(importlib.import_module(module), name)
                except (ImportError, AttributeError):
                    break
                if isinstance(obj, type) and issubclass(obj, bases()):
                    return obj
        raise _RefusedGlobal(full)


@functools.cache
def _allow_list(kind: str) -> _AllowList:
    """Build the allow-list for one kind of pickle.

    :param kind: ``"vecnormalize"``, ``"replay_buffer"`` or ``"model_data"``.
    :return: The allow-list.
    """
    extra = {"vecnormalize": _VECNORMALIZE, "replay_buffer": _REPLAY_BUFFER, "model_data": _MODEL_DATA}[kind]
    exact = {**_numpy_globals(), **_same_name_table(_SPACES), **_same_name_table(extra)}
    if kind == "model_data":
        exact.update(_RENAMED)
    return _AllowList(exact, _class_families() if kind == "model_data" else None)


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that only resolves globals from an allow-list.

    :param file: Binary file to read the pickle from.
    :param allow: The allow-list.
    """

    def __init__(self, file: io.BufferedIOBase | io.BytesIO, allow: _AllowList) -> None:
        super().__init__(file)
        self._allow = allow

    def find_class(self, module: str, name: str) -> Any:
        return self._allow.resolve(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not supported")


def _one_line(exc: BaseException, limit: int = 300) -> str:
    """Describe an exception in one short line.

    :param exc: The exception.
    :param limit: Maximum length of the message part.
    :return: ``"TypeName: message"`` with whitespace collapsed.
    """
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def safe_unpickle(path: Path, *, allowed: PickleKind, trust_pickles: bool = False) -> Any:
    """Unpickle a VecNormalize or replay-buffer file, refusing any global not on the allow-list.

    :param path: The pickle file.
    :param allowed: Which allow-list to use: ``"vecnormalize"`` or ``"replay_buffer"``.
    :param trust_pickles: Use the standard unpickler (the user trusts the file).
    :return: The unpickled object.
    :raises UnsafeFileError: The file references a global outside the allow-list.
    :raises ModelLoadError: The file is missing, truncated or not a pickle.
    """
    if allowed not in ("vecnormalize", "replay_buffer"):
        raise ValueError(f"unknown allow-list {allowed!r}")
    path = Path(path)
    try:
        with open(path, "rb") as file:
            if trust_pickles:
                return pickle.load(file)
            return _RestrictedUnpickler(file, _allow_list(allowed)).load()
    except _RefusedGlobal as refused:
        raise UnsafeFileError(
            f"{path}: refused to unpickle '{refused.name}', which is not on the {allowed} allow-list. "
            f"{_TRUST_HINT}"
        ) from None
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: file not found") from None
    except Exception as exc:  # any failure of a corrupt pickle: EOFError, UnpicklingError, ...
        raise ModelLoadError(f"{path}: not a valid {allowed} pickle ({_one_line(exc)})") from None


def _decode_entry(entry: dict[str, Any]) -> Any:
    """Decode one ``:serialized:`` model entry with the model-data allow-list.

    :param entry: The JSON entry.
    :return: The decoded object.
    :raises _RefusedGlobal: The payload references a global outside the allow-list.
    :raises Exception: Anything else a corrupt payload raises.
    """
    raw = base64.b64decode(str(entry[":serialized:"]).encode(), validate=False)
    return _RestrictedUnpickler(io.BytesIO(raw), _allow_list("model_data")).load()


# ---------------------------------------------------------------------------
# Model zips
# ---------------------------------------------------------------------------


def _read_zip(path: Path) -> tuple[bytes, dict[str, Any]]:
    """Read a model zip into memory and parse its metadata.

    :param path: The model zip.
    :return: The raw bytes of the file and the metadata (see :func:`read_model_metadata`).
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise ModelLoadError(f"{path}: file not found") from None
    except OSError as exc:
        raise ModelLoadError(f"{path}: cannot read ({_one_line(exc)})") from None
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            names = archive.namelist()
            if "data" not in names:
                raise ModelLoadError(f"{path}: not a valid model zip (no 'data' entry)")
            with archive.open("data") as member:
                # Bounded read: the size in the zip header is not to be trusted.
                raw = member.read(_MAX_DATA_BYTES + 1)
            if len(raw) > _MAX_DATA_BYTES:
                raise ModelLoadError(f"{path}: not a valid model zip ('data' entry is too large)")
            text = raw.decode("utf-8")
            version = None
            if "_stable_baselines3_version" in names:
                version = archive.read("_stable_baselines3_version").decode("utf-8", "replace").strip()
    except ModelLoadError:
        raise
    except Exception as exc:  # BadZipFile, zlib.error, EOFError, UnicodeDecodeError, ...
        raise ModelLoadError(f"{path}: not a valid model zip ({_one_line(exc)})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ModelLoadError(f"{path}: not a valid model zip (bad JSON in 'data': {exc})") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: not a valid model zip ('data' is not a JSON object)")
    serialized = {
        key: str(value.get(":type:", "?"))
        for key, value in data.items()
        if isinstance(value, dict) and ":serialized:" in value
    }
    meta = {"data": data, "serialized": serialized, "sb3_version": version, "files": names}
    return blob, meta


def read_model_metadata(path: Path) -> dict[str, Any]:
    """Read the JSON metadata of an SB3 model zip without unpickling anything.

    :param path: The model zip.
    :return: A dict with ``"data"`` (the raw JSON of the ``data`` file; pickled entries stay
        as ``{":type:", ":serialized:", ...}`` dicts), ``"serialized"`` (pickled key ->
        its ``:type:`` string), ``"sb3_version"`` (content of ``_stable_baselines3_version``
        or None) and ``"files"`` (the names in the zip).
    :raises ModelLoadError: The file is missing or not a model zip.
    """
    return _read_zip(path)[1]


# Entries that inference does not need and SB3 re-creates (or tolerates as None) when training.
_NONE_FALLBACK = {
    "action_noise",
    "replay_buffer_class",
    "rollout_buffer_class",
    "_last_obs",
    "_last_original_obs",
    "_last_episode_starts",
    "ep_info_buffer",
    "ep_success_buffer",
    "clip_range_vf",
    # ARS: re-created from the policy by _setup_model and re-synced after loading.
    "weights",
}
_EMPTY_DICT_FALLBACK = {"replay_buffer_kwargs", "rollout_buffer_kwargs"}
# SAC-like algorithms turn "auto" into -dim(action) in _setup_model.
_OTHER_FALLBACK: dict[str, Any] = {"target_entropy": "auto", "train_freq": (1, "step")}
# Value of a stand-in schedule when the file does not say: the SB3 defaults.
_SCHEDULE_DEFAULTS = {"clip_range": 0.2, "delta_std_schedule": 0.05}


def _is_schedule(key: str, entry: dict[str, Any]) -> bool:
    """Whether a model entry holds a schedule (or another function of the training progress).

    :param key: The key in ``data``.
    :param entry: The JSON entry.
    :return: True for schedules.
    """
    type_name = str(entry.get(":type:", ""))
    return (
        key in ("lr_schedule", "learning_rate", "clip_range")
        or key in _SCHEDULE_DEFAULTS
        or key.endswith("_schedule")
        or "Schedule" in type_name
        or type_name in ("<class 'function'>", "<class 'functools.partial'>")
    )


def _schedule_value(key: str, entry: dict[str, Any], data: dict[str, Any]) -> float:
    """Best value for a constant stand-in schedule, from readable JSON fields.

    :param key: The key in ``data``.
    :param entry: The JSON entry of the schedule.
    :param data: The whole JSON ``data``.
    :return: The value.
    """
    if key in ("lr_schedule", "learning_rate") and isinstance(data.get("learning_rate"), (int, float)):
        return float(data["learning_rate"])
    if key == "exploration_schedule" and isinstance(data.get("exploration_final_eps"), (int, float)):
        return float(data["exploration_final_eps"])
    # Recent SB3 writes e.g. "value_schedule": "ConstantSchedule(val=0.2)" next to the payload.
    match = re.search(r"val=([-+0-9.eE]+)", str(entry.get("value_schedule", "")))
    if match:
        try:
            return float(match.group(1))
        except ValueError:
            pass
    if isinstance(entry.get("end"), (int, float)):
        return float(entry["end"])
    return _SCHEDULE_DEFAULTS.get(key, 0.0)


def _fallback(key: str, entry: dict[str, Any], data: dict[str, Any]) -> tuple[bool, Any]:
    """Safe stand-in for a model entry that cannot be decoded.

    :param key: The key in ``data``.
    :param entry: The JSON entry.
    :param data: The whole JSON ``data``.
    :return: ``(True, value)``, or ``(False, None)`` if there is no safe stand-in.
    """
    if key in _NONE_FALLBACK:
        return True, None
    if key in _EMPTY_DICT_FALLBACK:
        return True, {}
    if key in _OTHER_FALLBACK:
        return True, _OTHER_FALLBACK[key]
    if _is_schedule(key, entry):
        return True, FixedSchedule(_schedule_value(key, entry, data))
    return False, None


def _describe_space(space: Any) -> str:
    """Short description of a space: ``Box(4,)``, ``Discrete(2)``, ``Dict(a: Box(2,))``.

    :param space: A gymnasium space.
    :return: The description.
    """
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        dtype = "" if space.dtype == "float32" else f", {space.dtype}"
        return f"Box{tuple(space.shape)}{dtype}"
    if isinstance(space, spaces.Dict):
        return "Dict(" + ", ".join(f"{k}: {_describe_space(v)}" for k, v in space.spaces.items()) + ")"
    if isinstance(space, spaces.Tuple):
        return "Tuple(" + ", ".join(_describe_space(v) for v in space.spaces) + ")"
    return repr(space)


def _entry_type_name(entry: dict[str, Any]) -> str:
    """Class name in the ``:type:`` of a JSON entry: ``"<class 'gymnasium.spaces.box.Box'>"`` -> ``Box``.

    :param entry: The JSON entry.
    :return: The class name.
    """
    return str(entry.get(":type:", "?")).rsplit(".", 1)[-1].rstrip("'>")


def _readable_match(entry: dict[str, Any], given: Any) -> bool:
    """Whether the readable fields of a pickled space's JSON entry agree with a space.

    Only the class name is compared, so a space pickled by the old ``gym`` package
    matches its ``gymnasium`` twin (SB3 converts them on load).

    :param entry: The JSON entry of the stored space.
    :param given: The env's space.
    :return: True if type, shape, dtype and ``n`` agree as far as the JSON tells.
    """
    if _entry_type_name(entry) != type(given).__name__:
        return False
    shape = entry.get("_shape")
    if isinstance(shape, list) and tuple(shape) != tuple(getattr(given, "shape", None) or ()):
        return False
    dtype = entry.get("dtype")
    if isinstance(dtype, str) and dtype != str(getattr(given, "dtype", dtype)):
        return False
    return "n" not in entry or str(entry["n"]) == str(getattr(given, "n", ""))


def _describe_entry(entry: dict[str, Any]) -> str:
    """Short description of a space from the readable fields of its JSON entry.

    :param entry: The JSON entry of a pickled space.
    :return: The description.
    """
    type_name = _entry_type_name(entry)
    if "n" in entry and "_shape" in entry and entry["_shape"] == []:
        return f"{type_name}({entry['n']})"
    shape = entry.get("_shape")
    return f"{type_name}{tuple(shape)}" if isinstance(shape, list) else type_name


def _sb3_view(space: Any) -> Any:
    """The space SB3 trains on for an env with this space (images become channel-first).

    :param space: The env's space.
    :return: The transposed space, or None if SB3 would not transpose it.
    """
    from gymnasium import spaces
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
    from stable_baselines3.common.vec_env import VecTransposeImage

    def needs(sub: Any) -> bool:
        return is_image_space(sub) and not is_image_space_channels_first(sub)

    if isinstance(space, spaces.Box) and needs(space):
        return VecTransposeImage.transpose_space(space)
    if isinstance(space, spaces.Dict) and any(needs(sub) for sub in space.spaces.values()):
        return spaces.Dict(
            {
                key: VecTransposeImage.transpose_space(sub, key) if needs(sub) else sub
                for key, sub in space.spaces.items()
            }
        )
    return None


def _check_space(
    path: Path, what: str, stored: Any, entry: dict[str, Any] | None, given: Any, env_name: str | None
) -> Any:
    """Compare the space a model was trained on with the env's space, like SB3 does on load.

    :param path: The model file (for messages).
    :param what: ``"observation"`` or ``"action"``.
    :param stored: The decoded stored space, or None if it could not be decoded.
    :param entry: The JSON entry of the stored space (readable fields), if pickled.
    :param given: The space of the env the caller built.
    :param env_name: Env name for messages.
    :return: The space to give the model (the stored one when known, as SB3 does).
    :raises ModelLoadError: The spaces differ.
    """
    env_text = f"env {env_name}" if env_name else "the env"
    if stored is not None:
        if stored == given:
            return stored
        transposed = _sb3_view(given)
        if transposed is not None and stored == transposed:
            return stored
        want, have = _describe_space(stored), _describe_space(given)
        if want == have:  # same shape and type; the bounds or dtype differ
            want, have = repr(stored), repr(given)
    else:
        # Could not decode: compare what the JSON shows in plain text.
        entry = entry or {}
        if _readable_match(entry, given):
            return given
        transposed = _sb3_view(given)
        if transposed is not None and _readable_match(entry, transposed):
            return transposed
        want, have = _describe_entry(entry), _describe_space(given)
    raise ModelLoadError(f"{path}: model expects {what} space {want} but {env_text} has {have}")


def _checked_spaces(
    path: Path, data: dict[str, Any], observation_space: Any, action_space: Any, env_name: str | None
) -> dict[str, tuple[Any, bool]]:
    """Check the model's stored spaces against the env's, as SB3 does when given an env.

    :param path: The model file (for messages).
    :param data: The raw JSON ``data``.
    :param observation_space: The env's observation space.
    :param action_space: The env's action space.
    :param env_name: Env name for messages.
    :return: Per key, the space to give the model and whether it was decoded from the file.
    :raises ModelLoadError: A space is missing or differs.
    """
    result = {}
    for key, given in (("observation_space", observation_space), ("action_space", action_space)):
        entry = data.get(key)
        if not (isinstance(entry, dict) and ":serialized:" in entry):
            raise ModelLoadError(f"{path}: not a valid model zip (no pickled '{key}' in 'data')")
        try:
            stored = _decode_entry(entry)
        except Exception:  # refused or unreadable: compare the readable fields instead
            stored = None
        space = _check_space(path, key.split("_")[0], stored, entry, given, env_name)
        result[key] = (space, stored is not None)
    return result


def _resolve_policy(path: Path, algo_class: type, entry: dict[str, Any]) -> type:
    """Find the policy class of a model among the algorithm's policy aliases.

    :param path: The model file (for messages).
    :param algo_class: The SB3 algorithm class.
    :param entry: The JSON entry of ``policy_class``.
    :return: The policy class.
    """
    module = entry.get("__module__", "?")
    try:
        cls = _decode_entry(entry)
    except _RefusedGlobal as refused:
        raise UnsafeFileError(
            f"{path}: entry 'policy_class' of the model needs unpickling (class {refused.name} from "
            f"module {module} is not a built-in policy); refused. {_TRUST_HINT}"
        ) from None
    except Exception as exc:
        raise ModelLoadError(f"{path}: cannot read the model's policy class ({_one_line(exc)})") from None
    aliases = getattr(algo_class, "policy_aliases", {})
    if cls not in aliases.values():
        names = ", ".join(aliases) or "none"
        raise ModelLoadError(
            f"{path}: the model uses policy {getattr(cls, '__qualname__', cls)} from {module}, which is "
            f"not a {algo_class.__name__} policy ({names}); was it trained with another algorithm?"
        )
    return cls


def _plan_custom_objects(
    path: Path,
    data: dict[str, Any],
    algo_class: type,
    *,
    observation_space: Any,
    action_space: Any,
    policy_class: type | None,
    extra_custom_objects: dict[str, Any],
    env_name: str | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Decide a safe value for every pickled entry of a model's ``data``.

    :param path: The model file (for messages).
    :param data: The raw JSON ``data``.
    :param algo_class: The SB3 algorithm class.
    :param observation_space: The env's observation space.
    :param action_space: The env's action space.
    :param policy_class: A policy class that overrides the stored one.
    :param extra_custom_objects: Caller-provided values; they win over everything.
    :param env_name: Env name for messages.
    :return: The ``custom_objects`` for SB3 and, per pickled key, how it was handled
        (``"decoded"``, ``"caller"``, ``"env space"``, ``"fallback"``).
    :raises UnsafeFileError: An entry needs unpickling and has no safe stand-in.
    """
    custom: dict[str, Any] = {}
    how: dict[str, str] = {}
    checked = _checked_spaces(path, data, observation_space, action_space, env_name)
    for key, (space, decoded) in checked.items():
        custom[key], how[key] = space, "decoded" if decoded else "env space"
    if policy_class is not None:
        custom["policy_class"], how["policy_class"] = policy_class, "caller"
    for key, entry in data.items():
        is_pickled = isinstance(entry, dict) and ":serialized:" in entry
        if key in extra_custom_objects:
            custom[key], how[key] = extra_custom_objects[key], "caller"
            continue
        if not is_pickled or key in custom:
            continue
        if key == "policy_class":
            custom[key], how[key] = _resolve_policy(path, algo_class, entry), "decoded"
            continue
        try:
            custom[key], how[key] = _decode_entry(entry), "decoded"
            continue
        except _RefusedGlobal as refused:
            reason = f"references {refused.name}"
        except Exception as exc:
            reason = f"unreadable: {_one_line(exc, 120)}"
        ok, value = _fallback(key, entry, data)
        if not ok:
            hint = " (or pass the config's policy_kwargs)" if key == "policy_kwargs" else ""
            raise UnsafeFileError(
                f"{path}: entry '{key}' of the model needs unpickling (type {entry.get(':type:', '?')}, "
                f"{reason}){hint}; refused. {_TRUST_HINT}"
            )
        logger.info("%s: entry %r replaced by %r (%s)", path, key, value, reason)
        custom[key], how[key] = value, "fallback"
    for key, value in extra_custom_objects.items():
        if key not in custom:
            custom[key] = value
            how[key] = "caller"
    # Safety net: SB3 would cloudpickle-load any pickled entry missing from custom_objects.
    missing = [k for k, v in data.items() if isinstance(v, dict) and ":serialized:" in v and k not in custom]
    if missing:
        raise UnsafeFileError(f"{path}: entries {missing} need unpickling; refused. {_TRUST_HINT}")
    return custom, how


def load_model(
    path: Path,
    algo_class: type[BaseAlgorithm],
    *,
    observation_space: gym.Space,
    action_space: gym.Space,
    policy_class: type | None = None,
    trust_pickles: bool = False,
    extra_custom_objects: dict[str, Any] | None = None,
    device: str = "cpu",
    env_name: str | None = None,
    env: GymEnv | None = None,
) -> BaseAlgorithm:
    """Load an SB3 model zip without unpickling untrusted data.

    Every pickled entry of the model's ``data`` is given to SB3 through ``custom_objects``:
    the caller's values (``extra_custom_objects``) first, then the env's spaces (after
    checking them against the stored ones), then whatever the restricted unpickler can
    decode (spaces, SB3 schedules, policy/buffer classes, torch optimizers and activations,
    numpy arrays), then safe stand-ins that inference does not need (constant schedules,
    None). Anything else is refused.

    :param path: The model zip.
    :param algo_class: The SB3 algorithm class, e.g. ``PPO``.
    :param observation_space: Observation space of the env the model will run on.
    :param action_space: Action space of the env the model will run on.
    :param policy_class: Policy class to use instead of the stored one (e.g. a custom policy).
    :param trust_pickles: Let SB3 unpickle everything (the user trusts the file).
    :param extra_custom_objects: Values that replace stored entries, e.g. ``policy_kwargs``
        or schedules rebuilt from the config.
    :param device: Torch device.
    :param env_name: Env name used in error messages.
    :param env: Env to attach, passed on to SB3's ``load`` (which wraps it and checks its spaces
        again). Models trained with ``HerReplayBuffer`` cannot be loaded without one.
    :return: The loaded model.
    :raises UnsafeFileError: The model needs unpickling and ``trust_pickles`` is False.
    :raises ModelLoadError: The file is not a loadable model for this env.
    """
    path = Path(path)
    # SB3 deletes "device" from policy_kwargs in place: never hand it the caller's dicts.
    extra = {k: dict(v) if isinstance(v, dict) else v for k, v in (extra_custom_objects or {}).items()}
    blob, meta = _read_zip(path)
    if trust_pickles:
        # Only for the clear error message: SB3 unpickles the spaces itself.
        _checked_spaces(path, meta["data"], observation_space, action_space, env_name)
        custom = {**extra, "policy_class": policy_class} if policy_class is not None else extra or None
    else:
        custom, how = _plan_custom_objects(
            path,
            meta["data"],
            algo_class,
            observation_space=observation_space,
            action_space=action_space,
            policy_class=policy_class,
            extra_custom_objects=extra,
            env_name=env_name,
        )
    try:
        # Load from the bytes we checked, so the file cannot change in between.
        model = algo_class.load(io.BytesIO(blob), env=env, device=device, custom_objects=custom)
    except Exception as exc:  # corrupt .pth, state-dict shape mismatch, wrong algorithm, ...
        raise ModelLoadError(f"{path}: cannot load {algo_class.__name__} model ({_one_line(exc)})") from None
    _resync_ars_weights(model)
    return model


def _resync_ars_weights(model: Any) -> None:
    """Make ARS's flat weight vector match the loaded policy parameters.

    :param model: The loaded model.
    """
    weights = getattr(model, "weights", None)
    policy = getattr(model, "policy", None)
    if weights is None or policy is None or not hasattr(policy, "load_from_vector"):
        return
    import torch

    current = torch.nn.utils.parameters_to_vector(policy.parameters()).detach()
    if weights.shape != current.shape or not torch.equal(weights, current):
        model.weights = current.clone()


# ---------------------------------------------------------------------------
# VecNormalize and replay buffers
# ---------------------------------------------------------------------------


def load_vecnormalize(path: Path, venv: VecEnv, trust_pickles: bool = False) -> VecNormalize:
    """Load VecNormalize statistics (like ``VecNormalize.load``) with the restricted unpickler.

    :param path: The ``vecnormalize.pkl`` file.
    :param venv: The vectorized env to wrap.
    :param trust_pickles: Use the standard unpickler (the user trusts the file).
    :return: The VecNormalize wrapper around ``venv`` with the saved statistics.
    :raises UnsafeFileError: The file references a global outside the allow-list.
    :raises ModelLoadError: The file is corrupt or does not fit ``venv``.
    """
    from stable_baselines3.common.vec_env import VecNormalize

    path = Path(path)
    obj = safe_unpickle(path, allowed="vecnormalize", trust_pickles=trust_pickles)
    if not isinstance(obj, VecNormalize):
        raise ModelLoadError(f"{path}: expected VecNormalize statistics, found {type(obj).__name__}")
    try:
        obj.set_venv(venv)
    except Exception as exc:  # AssertionError of check_shape_equal, missing attributes, ...
        raise ModelLoadError(
            f"{path}: the statistics do not fit the env (saved for observation space "
            f"{_describe_space(getattr(obj, 'observation_space', None))}, env has "
            f"{_describe_space(venv.observation_space)}; {_one_line(exc)})"
        ) from None
    return obj


def load_replay_buffer(
    model: OffPolicyAlgorithm, path: Path, trust_pickles: bool = False, truncate_last_traj: bool = True
) -> ReplayBuffer:
    """Load a replay buffer into an off-policy model (like ``model.load_replay_buffer``), safely.

    :param model: The off-policy model (DQN, SAC, TD3, DDPG, QRDQN, TQC, CrossQ, ...). For a
        ``HerReplayBuffer`` the model must have an env.
    :param path: The replay-buffer pickle.
    :param trust_pickles: Use the standard unpickler (the user trusts the file).
    :param truncate_last_traj: For HER: assume the last stored episode ended (as SB3 does).
    :return: The buffer, also set as ``model.replay_buffer``.
    :raises UnsafeFileError: The file references a global outside the allow-list.
    :raises ModelLoadError: The file is corrupt or does not fit the model.
    """
    import numpy as np
    from stable_baselines3.common.buffers import ReplayBuffer
    from stable_baselines3.common.preprocessing import get_action_dim, get_obs_shape
    from stable_baselines3.her.her_replay_buffer import HerReplayBuffer

    path = Path(path)
    buffer = safe_unpickle(path, allowed="replay_buffer", trust_pickles=trust_pickles)
    if not isinstance(buffer, ReplayBuffer):
        raise ModelLoadError(f"{path}: expected a replay buffer, found {type(buffer).__name__}")
    try:
        obs_ok = buffer.obs_shape == get_obs_shape(model.observation_space)
        act_ok = buffer.action_dim == get_action_dim(model.action_space)
    except Exception as exc:
        raise ModelLoadError(f"{path}: not a usable replay buffer ({_one_line(exc)})") from None
    if not (obs_ok and act_ok):
        raise ModelLoadError(
            f"{path}: the replay buffer holds observations {buffer.obs_shape} and {buffer.action_dim}-dim "
            f"actions, but the model has {_describe_space(model.observation_space)} and "
            f"{_describe_space(model.action_space)}"
        )
    # Same fix-ups as OffPolicyAlgorithm.load_replay_buffer (SB3 2.x).
    if not hasattr(buffer, "handle_timeout_termination"):  # buffers from SB3 < 2.1
        buffer.handle_timeout_termination = False
        buffer.timeouts = np.zeros_like(buffer.dones)
    if isinstance(buffer, HerReplayBuffer):
        if model.env is None:
            raise ModelLoadError(f"{path}: a HER replay buffer needs the model's env; set it before loading")
        buffer.set_env(model.env)
        if truncate_last_traj:
            buffer.truncate_last_trajectory()
    buffer.device = model.device
    model.replay_buffer = buffer
    return buffer


__all__ = [
    "load_model",
    "load_replay_buffer",
    "load_vecnormalize",
    "read_model_metadata",
    "safe_unpickle",
]
