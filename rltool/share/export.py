"""Export a trained run's deterministic policy to ONNX.

The exported graph maps a raw env observation (what ``env.reset()``/``env.step()`` return)
to the action ``rltool eval --deterministic`` takes: the run's VecNormalize observation
statistics and clipping are constants in the graph, and continuous actions are rescaled
to (or clipped at) the env's bounds exactly as SB3's ``predict`` does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rltool.errors import ConfigError, OutputError
from rltool.evaluate import ModelTarget, load_trained
from rltool.fileio import atomic_path, check_writable_folder

EXPORTABLE_ALGOS = ("ppo", "a2c", "dqn", "sac", "td3", "ddpg", "reinforce")
SUPPORTED = (
    f"ONNX export supports {', '.join(EXPORTABLE_ALGOS)} with MlpPolicy or CnnPolicy on Box or Discrete "
    "observations and Box or Discrete actions"
)
INPUT_NAME = "obs"
OUTPUT_NAME = "action"
OPSET = 17


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote.

    :param path: the .onnx file.
    :param env: the env id the policy acts in.
    :param algo: the algorithm.
    :param input_dtype: numpy dtype name of the ``obs`` input.
    :param input_shape: shape of one observation (the graph takes a batch of them).
    :param discrete_obs: the observation is an integer index (Discrete space).
    :param normalized: VecNormalize statistics are baked into the graph.
    """

    path: Path
    env: str
    algo: str
    input_dtype: str
    input_shape: tuple[int, ...]
    discrete_obs: bool
    normalized: bool

    def usage(self) -> str:
        """:return: five lines of Python that run the exported policy with onnxruntime on its env."""
        if self.discrete_obs:
            batch = "np.array([obs], dtype=np.int64)"
        else:
            batch = f"np.asarray(obs, dtype=np.{self.input_dtype})[None]"
        return "\n".join(
            (
                "import gymnasium as gym, numpy as np, onnxruntime as ort",
                f'session = ort.InferenceSession("{self.path}")',
                f'env = gym.make("{self.env}"); obs, _ = env.reset(seed=0)',
                f'action = session.run(None, {{"{INPUT_NAME}": {batch}}})[0][0]',
                "obs, reward, terminated, truncated, info = env.step(action)",
            )
        )


def check_exportable(algo: str, observation_space: Any, action_space: Any) -> None:
    """Raise :class:`ConfigError` (one line naming what is supported) for what cannot be exported.

    :param algo: the run's algorithm name.
    :param observation_space: the env's observation space.
    :param action_space: the env's action space.
    """
    from gymnasium import spaces

    if algo not in EXPORTABLE_ALGOS:
        raise ConfigError(f"cannot export {algo}: {SUPPORTED}")
    for what, space in (("observation", observation_space), ("action", action_space)):
        if not isinstance(space, spaces.Box | spaces.Discrete):
            raise ConfigError(f"cannot export a {type(space).__name__} {what} space: {SUPPORTED}")
    if isinstance(observation_space, spaces.Discrete) and observation_space.start != 0:
        raise ConfigError(f"cannot export a Discrete observation space starting at {observation_space.start}")
    if isinstance(action_space, spaces.Discrete) and action_space.start != 0:
        raise ConfigError(f"cannot export a Discrete action space starting at {action_space.start}")


def _policy_head(model: Any, algo: str) -> Any:
    """:return: a function mapping a (normalized) observation tensor to the policy's raw deterministic action."""
    import torch
    from stable_baselines3.common.policies import BaseModel

    policy = model.policy
    discrete = not hasattr(policy.action_space, "low")

    if algo == "dqn":
        return lambda obs: policy.q_net(obs).argmax(dim=1)
    if algo == "sac":
        return lambda obs: torch.tanh(policy.actor.get_action_dist_params(obs)[0])
    if algo in ("td3", "ddpg"):
        return policy.actor

    def actor_critic(obs: Any) -> Any:
        features = BaseModel.extract_features(policy, obs, policy.pi_features_extractor)
        output = policy.action_net(policy.mlp_extractor.forward_actor(features))
        if discrete:
            return output.argmax(dim=1)
        return torch.tanh(output) if policy.squash_output else output

    return actor_critic


def _normalizer(env: Any) -> tuple[Any, Any, float] | None:
    """:return: (mean, sqrt(var + epsilon), clip_obs) of a VecNormalize that normalizes observations, else None."""
    import numpy as np
    from stable_baselines3.common.vec_env import VecNormalize

    while env is not None and not isinstance(env, VecNormalize):
        env = getattr(env, "venv", None)
    if env is None or not env.norm_obs:
        return None
    rms = env.obs_rms
    if isinstance(rms, dict):
        raise ConfigError(f"cannot export normalized Dict observations: {SUPPORTED}")
    std = np.sqrt(rms.var + env.epsilon)
    return np.asarray(rms.mean, dtype=np.float64), np.asarray(std, dtype=np.float64), float(env.clip_obs)


def build_export_module(model: Any, algo: str, env: Any) -> Any:
    """Wrap a loaded model's deterministic policy as a ``torch.nn.Module`` fit for ONNX export.

    :param model: the loaded SB3 model.
    :param algo: its algorithm name.
    :param env: the VecEnv it was loaded with (VecNormalize statistics are read from it).
    :return: a module mapping a batch of raw observations to a batch of env actions.
    """
    import numpy as np
    import torch

    policy = model.policy
    check_exportable(algo, policy.observation_space, policy.action_space)
    head = _policy_head(model, algo)
    normalizer = _normalizer(env)
    action_space = policy.action_space
    box_action = hasattr(action_space, "low")
    squash = bool(getattr(policy, "squash_output", False))

    class ExportedPolicy(torch.nn.Module):
        """Raw observation -> normalization -> policy -> action in the env's bounds."""

        def __init__(self) -> None:
            super().__init__()
            self.policy = policy
            if normalizer is not None:
                mean, std, clip = normalizer
                self.register_buffer("obs_mean", torch.as_tensor(mean, dtype=torch.float64))
                self.register_buffer("obs_std", torch.as_tensor(std, dtype=torch.float64))
                self.clip_obs = clip
            if box_action:
                self.register_buffer("low", torch.as_tensor(np.asarray(action_space.low, dtype=np.float32)))
                self.register_buffer("high", torch.as_tensor(np.asarray(action_space.high, dtype=np.float32)))

        def forward(self, obs: Any) -> Any:
            if normalizer is not None:
                # VecNormalize computes in float64 and hands the policy float32
                scaled = (obs.to(torch.float64) - self.obs_mean) / self.obs_std
                obs = torch.clamp(scaled, -self.clip_obs, self.clip_obs).to(torch.float32)
            action = head(obs)
            if not box_action:
                return action
            action = action.reshape((-1, *action_space.shape))
            if squash:
                return self.low + (0.5 * (action + 1.0) * (self.high - self.low))
            return torch.maximum(torch.minimum(action, self.high), self.low)

    module = ExportedPolicy()
    module.eval()
    return module


def export_onnx(
    target: ModelTarget,
    output: Path,
    *,
    trust_pickles: bool = False,
    allowed_modules: tuple[str, ...] = (),
) -> ExportResult:
    """Export the deterministic policy of a trained run to an ONNX file.

    :param target: from :func:`rltool.evaluate.resolve_target`.
    :param output: the .onnx file to write (must not exist).
    :param trust_pickles: allow model files that need unpickling.
    :param allowed_modules: module prefixes allowed for wrappers.
    :return: what was written, with a usage example.
    """
    import io

    import numpy as np
    import torch
    from gymnasium import spaces

    if output.exists():
        raise OutputError(f"{output}: already exists; choose another -o or remove it")
    if output.suffix.lower() != ".onnx":
        raise OutputError(f"{output}: the output must end in .onnx")
    if target.config.algo not in EXPORTABLE_ALGOS:
        raise ConfigError(f"cannot export {target.config.algo}: {SUPPORTED}")
    check_writable_folder(output.parent if str(output.parent) else Path("."))
    from rltool.runtime import set_threads

    set_threads(None)
    model, env = load_trained(target, trust_pickles=trust_pickles, allowed_modules=allowed_modules)
    try:
        module = build_export_module(model, target.config.algo, env)
        normalized = _normalizer(env) is not None
    finally:
        env.close()
    observation_space = model.policy.observation_space
    discrete_obs = isinstance(observation_space, spaces.Discrete)
    if discrete_obs:
        example = torch.zeros((1,), dtype=torch.int64)
        dtype_name, shape = "int64", ()
    else:
        dtype = np.dtype(observation_space.dtype)
        example = torch.as_tensor(np.zeros((1, *observation_space.shape), dtype=dtype))
        dtype_name, shape = dtype.name, tuple(observation_space.shape)
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(
            module,
            (example,),
            buffer,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes={INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}},
            opset_version=OPSET,
        )
    data = _with_metadata(buffer.getvalue(), target, normalized)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as temporary:
        temporary.write_bytes(data)
    return ExportResult(
        output, target.config.env, target.config.algo, dtype_name, shape, discrete_obs, normalized
    )


def _with_metadata(data: bytes, target: ModelTarget, normalized: bool) -> bytes:
    """:return: the ONNX model with rltool's provenance in its metadata."""
    import onnx

    proto = onnx.load_from_string(data)
    for key, value in (
        ("rltool.algo", target.config.algo),
        ("rltool.env", target.config.env),
        ("rltool.model", str(target.model_path)),
        ("rltool.normalized_obs", str(normalized).lower()),
    ):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(proto)
    return proto.SerializeToString()
