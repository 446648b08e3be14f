"""Tests of rltool.safe_load: SB3 files load without running code they carry."""

from __future__ import annotations

import base64
import io
import json
import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from sb3_contrib import ARS, QRDQN, TQC, TRPO, CrossQ, MaskablePPO, RecurrentPPO
from stable_baselines3 import A2C, DDPG, DQN, PPO, SAC, TD3, HerReplayBuffer
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.envs import BitFlippingEnv
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from rltool.errors import ModelLoadError, UnsafeFileError
from rltool.safe_load import (
    _check_space,
    _plan_custom_objects,
    load_model,
    load_replay_buffer,
    load_vecnormalize,
    read_model_metadata,
    safe_unpickle,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")


class _Payload:
    """Unpickles into ``open(marker, "w")``: creating the marker file proves code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.marker, "w"))


class TinyExtractor(BaseFeaturesExtractor):
    """A custom features extractor: SB3 pickles a reference to it inside policy_kwargs."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 8) -> None:
        super().__init__(observation_space, features_dim)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(observation_space.shape[0], features_dim), torch.nn.Tanh()
        )

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.net(observations)


def _spaces(env_id: str) -> tuple[gym.Space, gym.Space]:
    env = gym.make(env_id)
    return env.observation_space, env.action_space


def _payload_b64(marker: Path) -> str:
    return base64.b64encode(pickle.dumps(_Payload(marker))).decode()


def _rewrite_zip(
    src: Path, dst: Path, *, data: dict | None = None, members: dict[str, bytes] | None = None
) -> Path:
    """Copy a model zip, replacing the JSON ``data`` and/or other members."""
    members = dict(members or {})
    if data is not None:
        members["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, members.pop(name, None) or zin.read(name))
        for name, content in members.items():
            zout.writestr(name, content)
    return dst


def _data(path: Path) -> dict:
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read("data"))


@pytest.fixture(scope="module")
def ppo_zip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ppo") / "ppo.zip"
    PPO("MlpPolicy", "CartPole-v1", n_steps=32, batch_size=32, n_epochs=1, device="cpu", seed=0).save(path)
    return path


def test_payload_really_runs_code_when_unpickled(tmp_path: Path) -> None:
    # Guards the hostile tests below against passing vacuously.
    marker = tmp_path / "marker"
    pickle.loads(base64.b64decode(_payload_b64(marker))).close()
    assert marker.exists()


def test_read_model_metadata(ppo_zip: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = _data(ppo_zip)
    data["evil"] = {":type:": "<class 'x'>", ":serialized:": _payload_b64(marker)}
    meta = read_model_metadata(_rewrite_zip(ppo_zip, tmp_path / "m.zip", data=data))
    assert meta["sb3_version"]
    assert meta["data"]["learning_rate"] == pytest.approx(3e-4)
    assert meta["serialized"]["observation_space"] == "<class 'gymnasium.spaces.box.Box'>"
    assert {"policy_class", "action_space", "lr_schedule", "clip_range", "evil"} <= set(meta["serialized"])
    assert "policy.pth" in meta["files"]
    assert not marker.exists()


@pytest.mark.parametrize("key", ["evil", "policy_kwargs"])
def test_hostile_entry_is_refused(ppo_zip: Path, tmp_path: Path, key: str) -> None:
    marker = tmp_path / "marker"
    data = _data(ppo_zip)
    data[key] = {":type:": "<class 'dict'>", ":serialized:": _payload_b64(marker)}
    hostile = _rewrite_zip(ppo_zip, tmp_path / "hostile.zip", data=data)
    obs_space, act_space = _spaces("CartPole-v1")
    with pytest.raises(UnsafeFileError, match=rf"entry '{key}'.*--trust-pickles"):
        load_model(hostile, PPO, observation_space=obs_space, action_space=act_space)
    assert not marker.exists()


@pytest.mark.parametrize("key", ["lr_schedule", "clip_range", "observation_space"])
def test_hostile_replaceable_entry_is_never_run(ppo_zip: Path, tmp_path: Path, key: str) -> None:
    # Entries with a safe stand-in (schedules, the env's own space) load without the payload.
    marker = tmp_path / "marker"
    data = _data(ppo_zip)
    data[key][":serialized:"] = _payload_b64(marker)
    hostile = _rewrite_zip(ppo_zip, tmp_path / "hostile.zip", data=data)
    obs_space, act_space = _spaces("CartPole-v1")
    model = load_model(hostile, PPO, observation_space=obs_space, action_space=act_space)
    assert not marker.exists()
    assert model.observation_space == obs_space
    assert model.lr_schedule(1.0) == pytest.approx(3e-4)
    assert model.clip_range(1.0) == pytest.approx(0.2)


def test_hostile_weights_file_is_refused_by_torch(ppo_zip: Path, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    evil = io.BytesIO()
    torch.save({"w": _Payload(marker)}, evil)
    hostile = _rewrite_zip(ppo_zip, tmp_path / "hostile.zip", members={"policy.pth": evil.getvalue()})
    obs_space, act_space = _spaces("CartPole-v1")
    with pytest.raises(ModelLoadError, match="cannot load PPO model"):
        load_model(hostile, PPO, observation_space=obs_space, action_space=act_space)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["vecnormalize", "replay_buffer"])
@pytest.mark.parametrize("nested", [False, True])
def test_hostile_pickle_is_refused(tmp_path: Path, kind: str, nested: bool) -> None:
    marker = tmp_path / "marker"
    payload: Any = _Payload(marker)
    if nested and kind == "vecnormalize":  # the payload hides inside a genuine object
        venv = VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1")]))
        venv.obs_rms.mean = payload
        payload = venv
    elif nested:
        buffer = ReplayBuffer(8, *_spaces("CartPole-v1"), device="cpu")
        buffer.rewards = payload
        payload = buffer
    path = tmp_path / f"{kind}.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafeFileError, match=r"refused to unpickle 'io\.open'.*--trust-pickles"):
        safe_unpickle(path, allowed=kind)
    if kind == "vecnormalize":
        with pytest.raises(UnsafeFileError):
            load_vecnormalize(path, DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    assert not marker.exists()


def test_garbage_pickles(tmp_path: Path) -> None:
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    good = tmp_path / "vn.pkl"
    venv.save(str(good))
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(good.read_bytes()[:-40])
    text = tmp_path / "text.pkl"
    text.write_text("hello\n")
    for path in (truncated, text, tmp_path / "missing.pkl"):
        with pytest.raises(ModelLoadError) as info:
            load_vecnormalize(path, DummyVecEnv([lambda: gym.make("CartPole-v1")]))
        assert not isinstance(info.value, UnsafeFileError)
        assert "\n" not in str(info.value)


def test_numpy_1x_names_are_accepted(tmp_path: Path) -> None:
    array = np.arange(6, dtype=np.float32).reshape(2, 3)
    # Protocol 3 writes globals as text; numpy 1.x called its core package numpy.core.
    raw = pickle.dumps({"a": array, "s": np.float64(1.5)}, protocol=3).replace(b"numpy._core", b"numpy.core")
    assert b"numpy.core.multiarray" in raw
    path = tmp_path / "old.pkl"
    path.write_bytes(raw)
    loaded = safe_unpickle(path, allowed="vecnormalize")
    np.testing.assert_array_equal(loaded["a"], array)
    assert loaded["s"] == 1.5


def test_ppo_with_vecnormalize_round_trip(tmp_path: Path) -> None:
    venv = VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1")]))
    model = PPO("MlpPolicy", venv, n_steps=64, batch_size=32, n_epochs=1, device="cpu", seed=1)
    model.learn(64)
    model.save(tmp_path / "model.zip")
    venv.save(str(tmp_path / "vecnormalize.pkl"))

    fresh = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    stats = load_vecnormalize(tmp_path / "vecnormalize.pkl", fresh)
    assert stats.venv is fresh
    np.testing.assert_array_equal(stats.obs_rms.mean, venv.obs_rms.mean)
    np.testing.assert_array_equal(stats.obs_rms.var, venv.obs_rms.var)
    assert stats.obs_rms.count == venv.obs_rms.count
    np.testing.assert_array_equal(stats.ret_rms.mean, venv.ret_rms.mean)

    loaded = load_model(
        tmp_path / "model.zip",
        PPO,
        observation_space=fresh.observation_space,
        action_space=fresh.action_space,
    )
    raw_obs = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    expected, _ = model.predict(venv.normalize_obs(raw_obs), deterministic=True)
    actual, _ = loaded.predict(stats.normalize_obs(raw_obs), deterministic=True)
    np.testing.assert_array_equal(actual, expected)
    stats.reset()  # usable as an env wrapper


@pytest.mark.parametrize(("algo", "env_id"), [(DQN, "CartPole-v1"), (SAC, "Pendulum-v1")])
def test_replay_buffer_round_trip(tmp_path: Path, algo: type, env_id: str) -> None:
    model = algo("MlpPolicy", env_id, buffer_size=200, learning_starts=60, device="cpu", seed=0)
    model.learn(64)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")

    obs_space, act_space = _spaces(env_id)
    loaded = load_model(tmp_path / "model.zip", algo, observation_space=obs_space, action_space=act_space)
    buffer = load_replay_buffer(loaded, tmp_path / "buffer.pkl")
    original = model.replay_buffer
    assert loaded.replay_buffer is buffer
    assert (buffer.pos, buffer.full, buffer.device) == (original.pos, original.full, loaded.device)
    assert buffer.pos == 64
    for name in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        np.testing.assert_array_equal(getattr(buffer, name), getattr(original, name))
    buffer.sample(8)


def test_her_replay_buffer_round_trip(tmp_path: Path) -> None:
    def make_env() -> BitFlippingEnv:
        return BitFlippingEnv(n_bits=4, continuous=False, max_steps=4)

    model = DQN(
        "MultiInputPolicy",
        make_env(),
        replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs={"n_sampled_goal": 2, "goal_selection_strategy": "future"},
        buffer_size=100,
        learning_starts=30,
        device="cpu",
    )
    model.learn(32)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    env = make_env()
    spaces_kwargs = {"observation_space": env.observation_space, "action_space": env.action_space}
    with pytest.raises(ModelLoadError, match="HerReplayBuffer"):  # SB3 needs the env for HER
        load_model(tmp_path / "model.zip", DQN, **spaces_kwargs)
    loaded = load_model(tmp_path / "model.zip", DQN, env=env, **spaces_kwargs)
    assert loaded.replay_buffer_class is HerReplayBuffer
    buffer = load_replay_buffer(loaded, tmp_path / "buffer.pkl")
    assert isinstance(buffer, HerReplayBuffer)
    assert (buffer.pos, buffer.full) == (model.replay_buffer.pos, model.replay_buffer.full)
    buffer.sample(4, env=None)
    np.testing.assert_array_equal(
        buffer.observations["observation"], model.replay_buffer.observations["observation"]
    )


_OFF_POLICY = {"buffer_size": 200, "learning_starts": 64}
_ON_POLICY = {"n_steps": 32, "batch_size": 32, "n_epochs": 1}
_ALGOS = [
    (PPO, "CartPole-v1", "MlpPolicy", _ON_POLICY),
    (A2C, "CartPole-v1", "MlpPolicy", {"n_steps": 8}),
    (DQN, "CartPole-v1", "MlpPolicy", _OFF_POLICY),
    (QRDQN, "CartPole-v1", "MlpPolicy", _OFF_POLICY),
    (TRPO, "CartPole-v1", "MlpPolicy", {"n_steps": 32, "batch_size": 32}),
    (ARS, "CartPole-v1", "LinearPolicy", {"n_delta": 1}),
    (RecurrentPPO, "CartPole-v1", "MlpLstmPolicy", _ON_POLICY),
    (MaskablePPO, "CartPole-v1", "MlpPolicy", _ON_POLICY),
    (SAC, "Pendulum-v1", "MlpPolicy", _OFF_POLICY),
    (TD3, "Pendulum-v1", "MlpPolicy", _OFF_POLICY),
    (DDPG, "Pendulum-v1", "MlpPolicy", _OFF_POLICY),
    (TQC, "Pendulum-v1", "MlpPolicy", _OFF_POLICY),
    (CrossQ, "Pendulum-v1", "MlpPolicy", _OFF_POLICY),
]


@pytest.mark.parametrize(("algo", "env_id", "policy", "kwargs"), _ALGOS, ids=[a[0].__name__ for a in _ALGOS])
def test_every_algorithm_loads_under_the_safe_default(
    tmp_path: Path, algo: type, env_id: str, policy: str, kwargs: dict
) -> None:
    model = algo(policy, env_id, device="cpu", seed=0, **kwargs)
    learn_kwargs = {"use_masking": False} if algo is MaskablePPO else {}
    model.learn(64, **learn_kwargs)
    path = tmp_path / "model.zip"
    model.save(path)

    obs_space, act_space = _spaces(env_id)
    meta = read_model_metadata(path)
    _, how = _plan_custom_objects(
        path,
        meta["data"],
        algo,
        observation_space=obs_space,
        action_space=act_space,
        policy_class=None,
        extra_custom_objects={},
        env_name=env_id,
    )
    # Everything SB3 pickles for these algorithms is decoded by the allow-list, except the
    # ARS weight vector (a torch tensor), which ARS rebuilds from the policy anyway.
    expected = {"weights": "fallback"} if algo is ARS else {}
    assert {k: v for k, v in how.items() if v != "decoded"} == expected

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # SB3 warns when it cannot unpickle an entry
        loaded = load_model(path, algo, observation_space=obs_space, action_space=act_space)
    assert type(loaded.policy) is type(model.policy)
    obs = np.stack([obs_space.sample() for _ in range(4)])
    expected_actions, _ = model.predict(obs, deterministic=True)
    actions, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_allclose(actions, expected_actions, rtol=1e-5, atol=1e-6)
    if algo is ARS:
        torch.testing.assert_close(
            loaded.weights, torch.nn.utils.parameters_to_vector(loaded.policy.parameters())
        )


def test_wrong_algorithm_is_named(tmp_path: Path) -> None:
    DQN("MlpPolicy", "CartPole-v1", buffer_size=100, device="cpu").save(tmp_path / "dqn.zip")
    obs_space, act_space = _spaces("CartPole-v1")
    with pytest.raises(ModelLoadError, match="not a PPO policy"):
        load_model(tmp_path / "dqn.zip", PPO, observation_space=obs_space, action_space=act_space)


def test_broken_zips(ppo_zip: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(ppo_zip.read_bytes()[: ppo_zip.stat().st_size // 2])
    text = tmp_path / "text.zip"
    text.write_text("not a zip\n")
    obs_space, act_space = _spaces("CartPole-v1")
    for path in (truncated, text):
        with pytest.raises(ModelLoadError, match=r"not a valid model zip \(") as info:
            load_model(path, PPO, observation_space=obs_space, action_space=act_space)
        assert "\n" not in str(info.value)
        with pytest.raises(ModelLoadError, match="not a valid model zip"):
            read_model_metadata(path)
    with pytest.raises(ModelLoadError, match="file not found"):
        read_model_metadata(tmp_path / "missing.zip")
    corrupt = _rewrite_zip(ppo_zip, tmp_path / "corrupt.zip", members={"policy.pth": b"garbage"})
    with pytest.raises(ModelLoadError, match="cannot load PPO model"):
        load_model(corrupt, PPO, observation_space=obs_space, action_space=act_space)


@pytest.mark.parametrize("trust", [False, True])
def test_space_mismatch_names_both_spaces(ppo_zip: Path, trust: bool) -> None:
    lunar_obs = spaces.Box(-np.inf, np.inf, (8,), np.float32)
    obs_space, act_space = _spaces("CartPole-v1")
    with pytest.raises(
        ModelLoadError, match=r"observation space Box\(4,\) but env LunarLander-v3 has Box\(8,\)"
    ):
        load_model(
            ppo_zip,
            PPO,
            observation_space=lunar_obs,
            action_space=act_space,
            env_name="LunarLander-v3",
            trust_pickles=trust,
        )
    with pytest.raises(ModelLoadError, match=r"action space Discrete\(2\) but the env has Discrete\(4\)"):
        load_model(
            ppo_zip, PPO, observation_space=obs_space, action_space=spaces.Discrete(4), trust_pickles=trust
        )


def test_space_mismatch_when_the_stored_space_cannot_be_decoded(ppo_zip: Path, tmp_path: Path) -> None:
    data = _data(ppo_zip)
    data["observation_space"][":serialized:"] = _payload_b64(tmp_path / "marker")
    hostile = _rewrite_zip(ppo_zip, tmp_path / "hostile.zip", data=data)
    with pytest.raises(
        ModelLoadError, match=r"expects observation space Box\(4,\) but the env has Box\(8,\)"
    ):
        load_model(
            hostile,
            PPO,
            observation_space=spaces.Box(-1, 1, (8,), np.float32),
            action_space=spaces.Discrete(2),
        )


def test_builtin_classes_in_policy_kwargs_load_without_help(tmp_path: Path) -> None:
    policy_kwargs = {"net_arch": [16], "activation_fn": torch.nn.ReLU, "optimizer_class": torch.optim.AdamW}
    PPO("MlpPolicy", "CartPole-v1", policy_kwargs=policy_kwargs, device="cpu").save(tmp_path / "m.zip")
    assert "policy_kwargs" in read_model_metadata(tmp_path / "m.zip")["serialized"]
    obs_space, act_space = _spaces("CartPole-v1")
    loaded = load_model(tmp_path / "m.zip", PPO, observation_space=obs_space, action_space=act_space)
    assert loaded.policy_kwargs["activation_fn"] is torch.nn.ReLU
    assert isinstance(loaded.policy.optimizer, torch.optim.AdamW)


def test_custom_features_extractor_needs_the_caller_or_trust(tmp_path: Path) -> None:
    policy_kwargs = {
        "features_extractor_class": TinyExtractor,
        "features_extractor_kwargs": {"features_dim": 8},
    }
    model = PPO("MlpPolicy", "CartPole-v1", policy_kwargs=policy_kwargs, device="cpu", seed=0)
    model.save(tmp_path / "m.zip")
    obs_space, act_space = _spaces("CartPole-v1")
    with pytest.raises(UnsafeFileError, match=r"'policy_kwargs'.*TinyExtractor.*--trust-pickles"):
        load_model(tmp_path / "m.zip", PPO, observation_space=obs_space, action_space=act_space)

    obs = np.stack([obs_space.sample() for _ in range(4)])
    expected, _ = model.predict(obs, deterministic=True)
    caller_kwargs = {**policy_kwargs, "features_extractor_kwargs": {"features_dim": 8}}
    snapshot = dict(caller_kwargs)
    from_config = load_model(
        tmp_path / "m.zip",
        PPO,
        observation_space=obs_space,
        action_space=act_space,
        extra_custom_objects={"policy_kwargs": caller_kwargs},
    )
    assert caller_kwargs == snapshot
    trusted = load_model(
        tmp_path / "m.zip", PPO, observation_space=obs_space, action_space=act_space, trust_pickles=True
    )
    for loaded in (from_config, trusted):
        assert isinstance(loaded.policy.features_extractor, TinyExtractor)
        np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)


def test_vecnormalize_for_another_env_is_rejected(tmp_path: Path) -> None:
    VecNormalize(DummyVecEnv([lambda: gym.make("CartPole-v1")])).save(str(tmp_path / "vn.pkl"))
    with pytest.raises(ModelLoadError, match=r"do not fit the env .*Box\(4,\).*Box\(3,\)"):
        load_vecnormalize(tmp_path / "vn.pkl", DummyVecEnv([lambda: gym.make("Pendulum-v1")]))


def test_space_check_follows_sb3_conventions(tmp_path: Path) -> None:
    # SB3 trains image envs channel-first (VecTransposeImage) and reads old gym spaces.
    hwc = spaces.Box(0, 255, (8, 8, 3), np.uint8)
    chw = spaces.Box(0, 255, (3, 8, 8), np.uint8)
    assert _check_space(tmp_path, "observation", chw, None, hwc, None) == chw
    entry = {":type:": "<class 'gym.spaces.box.Box'>", "_shape": [3, 8, 8], "dtype": "uint8"}
    assert _check_space(tmp_path, "observation", None, entry, hwc, None) == chw
    with pytest.raises(ModelLoadError, match=r"Box\(3, 8, 8\), uint8 but the env has Box\(4, 8, 8\), uint8"):
        _check_space(tmp_path, "observation", chw, None, spaces.Box(0, 255, (4, 8, 8), np.uint8), None)
    bounds = spaces.Box(-1, 1, (2,), np.float32)
    expected = r"Box\(-1\.0, 1\.0, \(2,\), float32\) but the env has Box\(-2\.0"
    with pytest.raises(ModelLoadError, match=expected):
        _check_space(tmp_path, "observation", bounds, None, spaces.Box(-2, 2, (2,), np.float32), None)
