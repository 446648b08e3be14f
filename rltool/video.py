"""Recording an mp4 of a trained agent, headless, through moviepy."""

from __future__ import annotations

from pathlib import Path

from rltool.errors import EnvError, OutputError
from rltool.evaluate import ModelTarget, load_trained
from rltool.fileio import atomic_path, check_writable_folder, numbered_path


def default_video_path(target: ModelTarget, folder: Path = Path("videos")) -> Path:
    """:return: ``videos/<algo>-<env>/<run>.mp4``, numbered so an existing video is never overwritten."""
    stem = target.run_dir.name if target.run_dir else target.model_path.stem
    return numbered_path(folder / target.config.run_name, stem, ".mp4")


def check_rgb_array(target: ModelTarget) -> None:
    """Raise :class:`EnvError` when the env cannot render ``rgb_array`` frames."""
    import gymnasium as gym

    from rltool.envs.registry import resolve_env_id

    config = target.config
    env_id = resolve_env_id(config.env, config.env_packages, where=f"{config.source}: env")
    try:  # an instance, since factories carry no metadata of their own
        env = gym.make(env_id, **config.env_kwargs)
    except Exception as error:  # noqa: BLE001 - gymnasium and user envs raise anything
        raise EnvError(f"cannot create env '{config.env}': {type(error).__name__}: {error}") from None
    modes = list(env.metadata.get("render_modes", []))
    env.close()
    if "rgb_array" not in modes:
        shown = ", ".join(modes) or "none"
        raise EnvError(
            f"env '{config.env}' cannot render rgb_array frames (its render modes: {shown}); no video possible"
        )


def prepare_headless_rendering(target: ModelTarget) -> None:
    """MuJoCo envs: pick an OpenGL backend (EGL, then OSMesa) when ``MUJOCO_GL`` is unset."""
    from rltool.envs.registry import resolve_env_id
    from rltool.envs.render import choose_mujoco_gl, needs_mujoco_gl

    config = target.config
    if needs_mujoco_gl(resolve_env_id(config.env, config.env_packages, where=f"{config.source}: env")):
        choose_mujoco_gl()


def record_video(
    target: ModelTarget,
    *,
    length: int = 300,
    output: Path | None = None,
    deterministic: bool = True,
    fps: int | None = None,
    seed: int | None = None,
    trust_pickles: bool = False,
    allowed_modules: tuple[str, ...] = (),
) -> Path:
    """Run the agent for ``length`` steps and write the frames as an mp4.

    :param target: from :func:`rltool.evaluate.resolve_target`.
    :param length: number of env steps to film.
    :param output: the mp4 (must not exist); default :func:`default_video_path`.
    :param deterministic: greedy actions.
    :param fps: frames per second (default: the env's ``render_fps``, else 30).
    :param seed: env seed.
    :param trust_pickles: allow files that need unpickling.
    :param allowed_modules: module prefixes allowed for wrappers.
    :return: where the video was written.
    """
    import os

    import numpy as np

    from rltool.runtime import set_threads

    # headless: pygame-based renderers must not look for a display or sound card
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    if output is not None and output.exists():
        raise OutputError(f"{output}: already exists; choose another --output or remove it")
    if output is not None and output.suffix.lower() != ".mp4":
        raise OutputError(f"{output}: the output must end in .mp4")
    output = output or default_video_path(target)
    check_writable_folder(output.parent)
    check_rgb_array(target)
    prepare_headless_rendering(target)
    set_threads(None, target.config.backend)
    model, env = load_trained(
        target,
        render_mode="rgb_array",
        seed=seed,
        trust_pickles=trust_pickles,
        allowed_modules=allowed_modules,
    )
    try:
        frames = _collect_frames(model, env, length, deterministic)
        env_fps = (env.get_attr("metadata")[0] or {}).get("render_fps")
    finally:
        env.close()
    if not frames or frames[0] is None:
        raise EnvError(f"env '{target.config.env}' returned no rgb_array frames")
    from moviepy import ImageSequenceClip

    clip = ImageSequenceClip([np.asarray(frame) for frame in frames], fps=fps or env_fps or 30)
    output.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(output) as temporary:
            clip.write_videofile(str(temporary), codec="libx264", audio=False, logger=None)
    finally:
        clip.close()
    return output


def _collect_frames(model, env, length: int, deterministic: bool) -> list:
    """Step the agent ``length`` times, one frame per step plus the first."""
    import numpy as np

    from rltool.episodes import supports_masks

    use_masks = supports_masks(model)
    observation = env.reset()
    frames = [env.render()]
    state = None
    episode_start = np.ones((env.num_envs,), dtype=bool)
    for _ in range(length):
        kwargs = {}
        if use_masks:
            from sb3_contrib.common.maskable.utils import get_action_masks

            kwargs["action_masks"] = get_action_masks(env)
        action, state = model.predict(
            observation, state=state, episode_start=episode_start, deterministic=deterministic, **kwargs
        )
        observation, _, dones, _ = env.step(action)
        episode_start = dones
        frames.append(env.render())
    return frames
