"""Config files -> one validated :class:`ExperimentConfig`.

Two formats are read by the same code:

* a single-experiment file: an rl-baselines3-zoo entry plus ``env``, ``algo`` and
  optionally ``seed``;
* an rl-baselines3-zoo hyperparameter file, unchanged: sections keyed by env id,
  with ``atari`` and ``default`` fallbacks; the env comes from ``--env`` and the
  algorithm from ``--algo`` or the file name (``ppo.yml``).

YAML is read with the safe loader only, and the zoo's Python-looking strings go
through :func:`rltool.literal.parse_literal`. Nothing here imports torch or SB3.

One cohesive module (about 800 lines): reading a YAML file, its checks and its serialization share the
key tables and the line-number bookkeeping, so the rules a config obeys are all in one place.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rltool.algos.hyperparams import BOUNDS, CHOICES, CLASS_VALUED_POLICY_KWARGS, Kind
from rltool.algos.registry import ALGOS, BACKENDS, DEFAULT_BACKEND, AlgoSpec
from rltool.errors import ConfigError, did_you_mean
from rltool.literal import Symbol, contains_symbol, parse_literal, symbol, to_source
from rltool.schedules import is_schedule_string

# Keys that rltool (like the zoo) handles itself instead of passing to the algorithm.
SPECIAL_KEYS = (
    "env", "algo", "seed", "n_timesteps", "n_envs", "policy", "normalize", "frame_stack", "env_kwargs",
    "env_wrapper", "vec_env_wrapper", "monitor_kwargs", "callback", "noise_type", "noise_std",
    "env_packages", "vec_env", "backend", "n_eval_envs",
)  # fmt: skip
_NORMALIZE_KEYS = ("norm_obs", "norm_reward", "clip_obs", "clip_reward", "gamma", "epsilon", "norm_obs_keys")
NOISE_TYPES = ("normal", "ornstein-uhlenbeck")
VEC_ENV_KINDS = ("dummy", "subproc", "envpool")
#: keys that ``vec_env: envpool`` cannot honour, and why
ENVPOOL_REFUSED_KEYS = {
    "env_kwargs": "EnvPool builds its envs in C++ and cannot pass them gymnasium's env_kwargs",
    "env_wrapper": "gymnasium wrappers cannot wrap EnvPool's C++ envs (vec_env_wrapper can wrap the vector)",
    "monitor_kwargs": "EnvPool's episode statistics take no Monitor options",
    "env_packages": "EnvPool cannot build envs from Python packages",
}


@dataclass(frozen=True)
class WrapperSpec:
    """A wrapper or callback named in a config: an importable dotted path and its keyword arguments."""

    path: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything one training run needs, validated. Build it with :func:`load_config`."""

    env: str
    algo: str
    n_timesteps: int
    policy: str
    seed: int | None = None
    n_envs: int = 1
    normalize: bool | dict[str, Any] = False
    frame_stack: int | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    env_wrapper: tuple[WrapperSpec, ...] = ()
    vec_env_wrapper: tuple[WrapperSpec, ...] = ()
    callback: tuple[WrapperSpec, ...] = ()
    monitor_kwargs: dict[str, Any] = field(default_factory=dict)
    noise_type: str | None = None
    noise_std: float | list[float] | None = None
    env_packages: tuple[str, ...] = ()
    vec_env: str = "dummy"
    #: gymnasium envs that run evaluation episodes side by side (one batched policy call per step)
    n_eval_envs: int = 1
    #: which library implements the algorithm: "sb3" (torch) or "sbx" (JAX)
    backend: str = DEFAULT_BACKEND
    #: keywords passed to the algorithm's constructor, with schedule strings and symbols unresolved
    algo_kwargs: dict[str, Any] = field(default_factory=dict)
    #: the file this config came from (for messages and train.json)
    source: str = "<config>"
    #: line of each key in ``source`` (for messages only: not part of the config's identity)
    key_lines: dict[str, int] = field(default_factory=dict, compare=False, repr=False)

    def where(self, key: str) -> str:
        """:return: ``file:line: key`` (or ``file: key`` when the line is unknown), for messages."""
        line = self.key_lines.get(key)
        return f"{self.source}:{line}: {key}" if line else f"{self.source}: {key}"

    @property
    def normalize_kwargs(self) -> dict[str, Any] | None:
        """:return: keyword arguments for VecNormalize, or None when normalization is off."""
        if self.normalize is False:
            return None
        return {} if self.normalize is True else dict(self.normalize)

    @property
    def run_name(self) -> str:
        """:return: the folder name of this config's runs, e.g. ``ppo-LunarLander-v3``."""
        from rltool.rundir import folder_name

        return folder_name(self.algo, self.env)


# ---------------------------------------------------------------------------
# Reading YAML


class _Loader(yaml.SafeLoader):
    """The safe loader; a separate class so nothing we add leaks into yaml.SafeLoader."""


def read_yaml(path: Path) -> tuple[Any, dict[tuple[str, ...], int]]:
    """Read a YAML file with the safe loader.

    :param path: the file.
    :return: the data and a map from key path (``("CartPole-v1", "n_steps")``) to 1-based line.
    """
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    if path.is_dir():
        raise ConfigError(f"{path}: is a folder, expected a YAML config file")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read ({error})") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        place = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        raise ConfigError(f"{path}{place}: YAML syntax error: {error.problem}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: YAML error: {error}") from None
    _refuse_duplicate_keys(node, path)
    return data, _key_lines(node)


def _refuse_duplicate_keys(node: Any, path: Path) -> None:
    """Raise :class:`ConfigError` naming both lines when a mapping repeats a key (YAML keeps the last)."""
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                line = key_node.start_mark.line + 1
                if key_node.value in seen:
                    raise ConfigError(
                        f"{path}:{line}: {key_node.value}: given twice (lines {seen[key_node.value]} and "
                        f"{line}); keep one"
                    )
                seen[key_node.value] = line
            _refuse_duplicate_keys(value_node, path)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _refuse_duplicate_keys(item, path)


def _key_lines(node: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], int]:
    lines: dict[tuple[str, ...], int] = {}
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                key = (*prefix, str(key_node.value))
                lines[key] = key_node.start_mark.line + 1
                if len(prefix) < 1:
                    lines.update(_key_lines(value_node, key))
    return lines


# ---------------------------------------------------------------------------
# Selecting the experiment


def _is_atari(env_id: str) -> bool:
    return "NoFrameskip" in env_id or env_id.startswith("ALE/")


def _select_experiment(
    data: Any, path: Path, lines: dict[tuple[str, ...], int], env: str | None, algo: str | None
) -> tuple[dict[str, Any], tuple[str, ...], str, str]:
    """:return: hyperparameters, the key prefix for line numbers, env id and algo name."""
    if data is None:
        raise ConfigError(f"{path}: the file is empty; expected a mapping of hyperparameters")
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"a {type(data).__name__}"
        raise ConfigError(f"{path}: the top level is {kind}; expected a mapping such as 'env: CartPole-v1'")
    if "env" in data or "algo" in data:  # a single-experiment file
        hyperparams = dict(data)
        env_id = env or hyperparams.get("env")
        algo_name = algo or hyperparams.get("algo")
        if env_id is None:
            raise ConfigError(f"{path}: missing key 'env' (for example 'env: CartPole-v1')")
        if algo_name is None:
            raise ConfigError(f"{path}: missing key 'algo' (for example 'algo: ppo')")
        return hyperparams, (), str(env_id), str(algo_name)
    # an rl-baselines3-zoo file keyed by env id
    if env is None:
        sections = ", ".join(list(data)[:5])
        raise ConfigError(
            f"{path}: this is a hyperparameter file keyed by env id ({sections}, ...); pass --env, "
            f"for example --env {next(iter(data), 'CartPole-v1')}"
        )
    if algo is None and path.stem not in (*ALGOS, "her"):
        raise ConfigError(
            f"{path}: cannot tell the algorithm from the file name '{path.name}'; pass --algo "
            f"({', '.join(ALGOS)})"
        )
    algo_name = algo or path.stem
    if env in data:
        section = env
    elif _is_atari(env) and "atari" in data:
        section = "atari"
    elif "default" in data:
        section = "default"
    else:
        raise ConfigError(
            f"{path}: no hyperparameters for env '{env}' and no 'default' section{did_you_mean(env, set(data))}"
        )
    hyperparams = data[section]
    if not isinstance(hyperparams, dict):
        line = lines.get((section,))
        raise ConfigError(f"{path}:{line}: section '{section}' must be a mapping of hyperparameters")
    return dict(hyperparams), (section,), env, algo_name


# ---------------------------------------------------------------------------
# Validating values


class _Checker:
    """Validates one experiment's values; knows the file and lines for messages."""

    def __init__(self, path: Path | str, lines: dict[tuple[str, ...], int], prefix: tuple[str, ...]):
        self.path = path
        self.lines = lines
        self.prefix = prefix
        self.override_keys: dict[str, str] = {}  # key -> how the command line gave it

    def where(self, key: str) -> str:
        if key in self.override_keys:
            return self.override_keys[key]
        line = self.lines.get((*self.prefix, key))
        return f"{self.path}:{line}: {key}" if line else f"{self.path}: {key}"

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.where(key)}: {message}")

    def integer(self, key: str, value: Any, *, minimum: int | None = None) -> int:
        value = _number_text(value)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"expected an integer, got {value!r}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be >= {minimum}, got {value}")
        return value

    def number(self, key: str, value: Any) -> float:
        value = _number_text(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.fail(key, f"expected a number, got {value!r}")
        return float(value)

    def bounded(self, key: str, value: Any) -> Any:
        """Check a number against its :data:`~rltool.algos.hyperparams.BOUNDS` (schedules, strings and None pass)."""
        bound = BOUNDS.get(key)
        if bound is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        if not bound.admits(value):
            raise self.fail(key, f"must be {bound.describe(key)}, got {value}")
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {value!r}")
        return value

    def mapping(self, key: str, value: Any) -> dict[str, Any]:
        if isinstance(value, str):
            value = parse_literal(value, where=self.where(key))
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a mapping or a 'dict(...)' string, got {value!r}")
        return {str(name): self._class_names(str(name), item, key) for name, item in value.items()}

    def _class_names(self, name: str, value: Any, key: str) -> Any:
        # In a YAML mapping, class-valued entries are strings ("activation_fn: nn.ReLU").
        if name in CLASS_VALUED_POLICY_KWARGS and isinstance(value, str):
            return symbol(value, where=self.where(key))
        return value

    def schedule(self, key: str, value: Any) -> float | str:
        if is_schedule_string(value):
            return value
        value = _number_text(value)
        if isinstance(value, str):
            raise self.fail(key, f"expected a number or a schedule such as 'lin_0.001', got {value!r}")
        return self.number(key, value)

    def wrappers(self, key: str, value: Any) -> tuple[WrapperSpec, ...]:
        """Zoo forms: "mod.Class", ["mod.Class", {"mod.Other": {kwarg: 1}}] or {"mod.Class": {...}}."""
        if value is None:
            return ()
        items = value if isinstance(value, list) else [value]
        specs = []
        for item in items:
            if isinstance(item, str):
                specs.append(WrapperSpec(item))
            elif isinstance(item, dict) and len(item) == 1:
                ((name, kwargs),) = item.items()
                specs.append(WrapperSpec(str(name), self.mapping(key, kwargs)))
            else:
                raise self.fail(key, f"expected 'module.Class' or a list of them (with kwargs), got {item!r}")
        for spec in specs:
            if "." not in spec.path:
                raise self.fail(
                    key, f"'{spec.path}' is not a dotted path such as 'gymnasium.wrappers.TimeLimit'"
                )
        return tuple(specs)


def _number_text(value: Any) -> Any:
    """Read ``"1e3"``/``"1e-3"`` as numbers, as ``-p`` does: YAML takes them for strings, the zoo writes them."""
    if isinstance(value, str) and any(c.isdigit() for c in value):
        with contextlib.suppress(ValueError):
            number = float(value)
            return int(number) if number.is_integer() and "." not in value and "e-" not in value else number
    return value


def _check_algo_kwarg(
    checker: _Checker, algo: str, key: str, value: Any, backend: str = DEFAULT_BACKEND
) -> Any:
    return checker.bounded(key, _check_algo_kwarg_type(checker, algo, key, value, backend))


def _check_algo_kwarg_type(checker: _Checker, algo: str, key: str, value: Any, backend: str) -> Any:
    """Check one algorithm keyword against the registry: is it the algorithm's, and of its kind?"""
    spec = BACKENDS[backend][algo]
    if key not in spec.keywords:
        from rltool.envs.families import legacy_her_message

        legacy = legacy_her_message(key)
        if legacy is not None:
            raise checker.fail(key, legacy)
        if backend != DEFAULT_BACKEND and key in ALGOS.get(algo, spec).keywords:
            raise checker.fail(
                key, f"not supported by {algo} on backend {backend} (remove it, or use backend sb3)"
            )
        options = set(spec.keywords) | set(SPECIAL_KEYS)
        raise checker.fail(key, f"unknown key for {algo}{did_you_mean(key, options)}")
    match spec.kind(key):
        case Kind.SCHEDULE:
            return checker.schedule(key, value)
        case Kind.OPTIONAL_FLOAT:
            return None if value is None else checker.number(key, value)
        case Kind.FLOAT:
            return checker.number(key, value)
        case Kind.INT:
            return checker.integer(key, value)
        case Kind.POSITIVE_INT:
            return checker.integer(key, value, minimum=1)
        case Kind.BOOL:
            return checker.boolean(key, value)
        case Kind.STEP_LIST:
            if not isinstance(value, list):
                raise checker.fail(key, f"expected a list of step numbers, got {value!r}")
            return [checker.integer(key, item, minimum=0) for item in value]
        case Kind.MAPPING:
            return _check_mapping_kwarg(checker, spec, backend, key, value)
        case Kind.CLASS:
            if not isinstance(value, str):
                raise checker.fail(key, f"expected a class name such as 'HerReplayBuffer', got {value!r}")
            return symbol(value, where=checker.where(key))
        case Kind.ENTROPY:
            automatic = value == "auto" or (key == "ent_coef" and str(value).startswith("auto_"))
            if isinstance(value, str) and automatic:
                if not spec.off_policy:
                    raise checker.fail(
                        key, f"'{value}' is only for SAC-like algorithms; use a number for {algo}"
                    )
                return value
            return checker.number(key, value)
        case Kind.TRAIN_FREQ:
            if isinstance(value, (list, tuple)) and len(value) == 2 and value[1] in ("step", "episode"):
                return (checker.integer(key, value[0], minimum=1), value[1])
            return checker.integer(key, value, minimum=1)
        case Kind.CHOICE:
            if value not in CHOICES[key]:
                raise checker.fail(key, f"expected one of {', '.join(CHOICES[key])}, got {value!r}")
            return value
    return value


def _check_mapping_kwarg(
    checker: _Checker, spec: AlgoSpec, backend: str, key: str, value: Any
) -> dict[str, Any]:
    mapping = checker.mapping(key, value)
    if key == "policy_kwargs":
        _check_policy_kwargs(checker, spec, backend, mapping)
    if key == "replay_buffer_kwargs":
        from rltool.envs.families import legacy_her_kwargs_message

        legacy = legacy_her_kwargs_message(mapping)
        if legacy is not None:
            raise checker.fail(key, legacy)
    return mapping


def _check_policy_kwargs(
    checker: _Checker, spec: AlgoSpec, backend: str, policy_kwargs: dict[str, Any]
) -> None:
    """Refuse ``policy_kwargs`` entries the backend's policies do not take (the SBX ones are listed)."""
    if spec.policy_keywords is None:
        return
    for name in policy_kwargs:
        if name not in spec.policy_keywords:
            raise checker.fail(
                "policy_kwargs",
                f"entry '{name}' is not supported by {spec.name} on backend {backend} "
                f"(supported: {', '.join(sorted(spec.policy_keywords))})",
            )
    activation = policy_kwargs.get("activation_fn")
    if activation is not None and backend == "sbx":
        from rltool.algos.jax_activations import JAX_ACTIVATIONS

        if getattr(activation, "name", activation) not in JAX_ACTIVATIONS:
            raise checker.fail(
                "policy_kwargs",
                f"activation_fn {activation} is not supported by {spec.name} on backend {backend} "
                f"(supported: {', '.join(JAX_ACTIVATIONS)})",
            )
    net_arch = policy_kwargs.get("net_arch")
    if isinstance(net_arch, list) and any(isinstance(item, dict) for item in net_arch):
        raise checker.fail(
            "policy_kwargs",
            "net_arch: a list holding a dict is SB3 1.x's form; write dict(pi=[...], vf=[...])",
        )


def _backend_of(hyperparams: dict[str, Any], checker: _Checker) -> str:
    backend = hyperparams.get("backend", DEFAULT_BACKEND)
    if backend not in BACKENDS:
        raise checker.fail("backend", f"expected one of {', '.join(BACKENDS)}, got {backend!r}")
    return backend


def _build(
    hyperparams: dict[str, Any], env: str, algo: str, checker: _Checker, source: str
) -> ExperimentConfig:
    if algo == "her":
        from rltool.envs.families import legacy_her_message

        raise checker.fail("algo", f"algorithm 'her': {legacy_her_message('model_class')}")
    if algo not in ALGOS and algo not in BACKENDS["sbx"]:
        raise checker.fail(
            "algo",
            f"unknown algorithm '{algo}'{did_you_mean(algo.lower(), set(ALGOS))} (known: {', '.join(ALGOS)})",
        )
    backend = _backend_of(hyperparams, checker)
    table = BACKENDS[backend]
    if algo not in table:
        raise checker.fail(
            "backend",
            f"algorithm {algo} is not supported by backend {backend} (it has {', '.join(table)}; "
            f"use backend {DEFAULT_BACKEND} for {algo})",
        )
    spec = table[algo]
    values: dict[str, Any] = {}
    algo_kwargs: dict[str, Any] = {}
    for key, value in hyperparams.items():
        key = str(key)
        if key in ("env", "algo", "backend"):
            continue
        if key in SPECIAL_KEYS:
            values[key] = value
        else:
            algo_kwargs[key] = _check_algo_kwarg(checker, algo, key, value, backend)

    if "n_timesteps" not in values:
        raise ConfigError(f"{checker.path}: missing key 'n_timesteps' (or pass --n-timesteps)")
    n_timesteps = checker.integer("n_timesteps", values["n_timesteps"], minimum=1)
    n_envs = checker.integer("n_envs", values.get("n_envs", 1), minimum=1)
    n_eval_envs = checker.integer("n_eval_envs", values.get("n_eval_envs", 1), minimum=1)
    seed = values.get("seed")
    seed = None if seed is None else checker.integer("seed", seed, minimum=0)
    policy = values.get("policy", spec.policies[0])
    if policy not in spec.policies:
        raise checker.fail(
            "policy",
            f"unknown policy '{policy}' for {algo}{'' if backend == DEFAULT_BACKEND else f' on backend {backend}'}; "
            f"choose one of {', '.join(spec.policies)}",
        )

    normalize = values.get("normalize", False)
    if isinstance(normalize, str):
        normalize = parse_literal(normalize, where=checker.where("normalize"))
    if isinstance(normalize, dict):
        for name in normalize:
            if name not in _NORMALIZE_KEYS:
                raise checker.fail(
                    "normalize", f"unknown VecNormalize option '{name}'{did_you_mean(name, _NORMALIZE_KEYS)}"
                )
    elif not isinstance(normalize, bool):
        raise checker.fail(
            "normalize", f"expected true, false or a mapping of VecNormalize options, got {normalize!r}"
        )

    frame_stack = values.get("frame_stack")
    if frame_stack is not None:
        frame_stack = checker.integer("frame_stack", frame_stack, minimum=1)

    noise_type = values.get("noise_type")
    noise_std = values.get("noise_std")
    if noise_type is not None:
        if noise_type not in NOISE_TYPES:
            raise checker.fail("noise_type", f"expected one of {', '.join(NOISE_TYPES)}, got {noise_type!r}")
        if "action_noise" not in spec.keywords:
            raise checker.fail("noise_type", f"{algo} takes no action noise")
        if noise_std is None:
            raise checker.fail("noise_type", "needs 'noise_std' too")
    if noise_std is not None:
        if isinstance(noise_std, list):
            noise_std = [
                checker.bounded("noise_std", checker.number("noise_std", item)) for item in noise_std
            ]
        else:
            noise_std = checker.bounded("noise_std", checker.number("noise_std", noise_std))

    env_packages = values.get("env_packages") or ()
    if isinstance(env_packages, str):
        env_packages = [env_packages]
    if not isinstance(env_packages, (list, tuple)) or not all(isinstance(p, str) for p in env_packages):
        raise checker.fail("env_packages", f"expected a list of module names, got {env_packages!r}")

    vec_env = values.get("vec_env", "dummy")
    if vec_env not in VEC_ENV_KINDS:
        raise checker.fail("vec_env", f"expected one of {', '.join(VEC_ENV_KINDS)}, got {vec_env!r}")
    if vec_env == "envpool":
        for key, reason in ENVPOOL_REFUSED_KEYS.items():
            if values.get(key):
                raise checker.fail(
                    key, f"not possible with vec_env: envpool ({reason}); remove it or use vec_env: dummy"
                )

    return ExperimentConfig(
        env=env,
        algo=algo,
        n_timesteps=n_timesteps,
        policy=policy,
        seed=seed,
        n_envs=n_envs,
        normalize=normalize,
        frame_stack=frame_stack,
        env_kwargs=checker.mapping("env_kwargs", values.get("env_kwargs")),
        env_wrapper=checker.wrappers("env_wrapper", values.get("env_wrapper")),
        vec_env_wrapper=checker.wrappers("vec_env_wrapper", values.get("vec_env_wrapper")),
        callback=checker.wrappers("callback", values.get("callback")),
        monitor_kwargs=checker.mapping("monitor_kwargs", values.get("monitor_kwargs")),
        noise_type=noise_type,
        noise_std=noise_std,
        env_packages=tuple(env_packages),
        vec_env=vec_env,
        n_eval_envs=n_eval_envs,
        backend=backend,
        algo_kwargs=algo_kwargs,
        source=source,
        key_lines={
            key[-1]: line for key, line in checker.lines.items() if key[:-1] == checker.prefix and key
        },
    )


def refuse_for_envpool(config: ExperimentConfig) -> None:
    """Raise :class:`ConfigError` naming the first key of ``config`` that EnvPool cannot honour.

    :param config: a config about to be built with EnvPool (e.g. resumed with ``--vec-env envpool``).
    """
    for key, reason in ENVPOOL_REFUSED_KEYS.items():
        if getattr(config, key):
            raise ConfigError(
                f"{config.source}: {key}: not possible with vec_env: envpool ({reason}); "
                "remove it or use vec_env: dummy"
            )


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``-p key=value``; the value is read as YAML (``1e-3``, ``true``, ``[64, 64]``).

    :param text: the argument as typed.
    :return: key and value (strings such as ``dict(...)`` are parsed later, like file values).
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"-p {text}: expected key=value, for example -p learning_rate=1e-3")
    try:
        value = yaml.load(raw, Loader=_Loader)  # noqa: S506 - safe loader
    except yaml.YAMLError:
        value = raw
    # YAML reads "1e-3" as a string (it wants "1.0e-3"); numbers typed on a command line are numbers.
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value) if any(c in value for c in ".eE") else int(value)
    return key, value


def load_config(
    path: Path | str,
    *,
    env: str | None = None,
    algo: str | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    n_timesteps: int | None = None,
    seed: int | None = None,
    n_envs: int | None = None,
    vec_env: str | None = None,
    check_env: bool = True,
    backend: str | None = None,
) -> ExperimentConfig:
    """Read and validate a config file (single-experiment or rl-baselines3-zoo format).

    :param path: the YAML file.
    :param env: env id; required for zoo files, overrides ``env`` in single-experiment files.
    :param algo: algorithm name; for zoo files defaults to the file name (``ppo.yml`` -> ppo).
    :param overrides: ``key=value`` strings from ``-p``.
    :param n_timesteps: overrides the file's budget.
    :param seed: overrides the file's seed.
    :param n_envs: overrides the number of parallel envs.
    :param vec_env: overrides the kind of vectorized env (``--vec-env``).
    :param check_env: also check that the env id exists (imports gymnasium, not torch).
    :param backend: overrides the file's ``backend`` ("sb3" or "sbx"; ``--backend``).
    :return: the validated config.
    """
    path = Path(path)
    data, lines = read_yaml(path)
    hyperparams, prefix, env_id, algo_name = _select_experiment(data, path, lines, env, algo)
    checker = _Checker(path, lines, prefix)
    for text in overrides:
        key, value = parse_override(text)
        if key in ("env", "algo"):
            raise ConfigError(f"-p {text}: {key} is not a hyperparameter; pass --{key} {value} instead")
        hyperparams[key] = value
        checker.override_keys[key] = f"-p {key}"
    if n_timesteps is not None:
        hyperparams["n_timesteps"] = n_timesteps
        checker.override_keys["n_timesteps"] = "--n-timesteps"
    if seed is not None:
        hyperparams["seed"] = seed
    if n_envs is not None:
        hyperparams["n_envs"] = n_envs
        checker.override_keys["n_envs"] = "--n-envs"
    if vec_env is not None:
        hyperparams["vec_env"] = vec_env
        checker.override_keys["vec_env"] = "--vec-env"
    if backend is not None:
        hyperparams["backend"] = backend
        checker.override_keys["backend"] = "--backend"
    config = _build(hyperparams, env_id, algo_name, checker, str(path))
    if check_env:
        from rltool.envs.registry import check_env_id

        check_env_id(config.env, config.env_packages, where=f"{path}: env")
        if config.vec_env == "envpool":
            from rltool.envs.registry import check_envpool_env

            check_envpool_env(config.env, where=f"{path}: env")
    return config


# ---------------------------------------------------------------------------
# Writing the resolved config


def _plain(value: Any) -> Any:
    """Turn parsed values into YAML-friendly data that :func:`load_config` reads back unchanged."""
    if isinstance(value, Symbol) or (isinstance(value, dict) and contains_symbol(value)):
        return to_source(value)
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _wrappers_plain(specs: tuple[WrapperSpec, ...]) -> list[Any]:
    return [spec.path if not spec.kwargs else {spec.path: _plain(spec.kwargs)} for spec in specs]


def config_to_dict(config: ExperimentConfig) -> dict[str, Any]:
    """:return: the single-experiment form of ``config``; written as ``config.yaml`` in a run folder."""
    data: dict[str, Any] = {
        "env": config.env,
        "algo": config.algo,
        "seed": config.seed,
        "n_timesteps": config.n_timesteps,
        "n_envs": config.n_envs,
        "policy": config.policy,
    }
    optional = {
        "normalize": _plain(config.normalize) if config.normalize else None,
        "frame_stack": config.frame_stack,
        "env_kwargs": _plain(config.env_kwargs) or None,
        "env_wrapper": _wrappers_plain(config.env_wrapper) or None,
        "vec_env_wrapper": _wrappers_plain(config.vec_env_wrapper) or None,
        "callback": _wrappers_plain(config.callback) or None,
        "monitor_kwargs": _plain(config.monitor_kwargs) or None,
        "noise_type": config.noise_type,
        "noise_std": config.noise_std,
        "env_packages": list(config.env_packages) or None,
        "vec_env": config.vec_env if config.vec_env != "dummy" else None,
        "backend": config.backend if config.backend != DEFAULT_BACKEND else None,
        "n_eval_envs": config.n_eval_envs if config.n_eval_envs != 1 else None,
    }
    data.update({key: value for key, value in optional.items() if value is not None})
    data.update({key: _plain(value) for key, value in config.algo_kwargs.items()})
    return data


def config_to_yaml(config: ExperimentConfig, header: str = "") -> str:
    """:return: YAML text of :func:`config_to_dict`, with an optional comment header."""
    body = yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)
    return (header + body) if header else body


def config_from_mapping(
    hyperparams: dict[str, Any], source: str, *, check_env: bool = True
) -> ExperimentConfig:
    """Validate a single-experiment mapping (with ``env`` and ``algo``) that did not come from a file we read.

    Used for runs imported from rl-baselines3-zoo folders and Hub repositories.

    :param hyperparams: ``env``, ``algo`` and the hyperparameters, as in a single-experiment file.
    :param source: what to name in error messages (and record as the config's source).
    :param check_env: also check that the env id exists.
    :return: the validated config.
    """
    env_id, algo_name = hyperparams.get("env"), hyperparams.get("algo")
    if env_id is None or algo_name is None:
        raise ConfigError(f"{source}: needs both an env and an algo")
    config = _build(dict(hyperparams), str(env_id), str(algo_name), _Checker(source, {}, ()), source)
    if check_env:
        from rltool.envs.registry import check_env_id

        check_env_id(config.env, config.env_packages, where=f"{source}: env")
    return config
