"""Train one config with several seeds, each in its own process, with one progress display.

Core of ``rltool train CONFIG --seeds 0-4 --jobs 2`` (:mod:`rltool.cli.seeds` turns its results into
lines and an exit code). The CLI loads the config once and derives one config per seed
(:func:`seed_configs`); :func:`run_seeds`

* creates every run folder in this (parent) process with :func:`rltool.rundir.create_run_dir`, so
  seed ``i`` always gets a distinct ``run-N`` folder, printed before anything starts;
* starts at most ``jobs`` children at a time from the ``spawn`` context (not ``fork``: torch
  misbehaves when forked after it started threads), each training with ``threads=1`` (with
  ``--jobs 1``: the threads asked for) and ``progress=False`` in its own folder;
* draws one tqdm bar over the summed steps of all seeds; each child sends its step count through
  a multiprocessing queue from a small SB3 callback, at most twice a second;
* on Ctrl-C (the terminal sends SIGINT to the whole process group) lets every running child stop
  the way ``rltool train`` does (model and checkpoint saved, ``status: interrupted`` in
  train.json), waits for them, starts no new seed, and reports each run; a second Ctrl-C stops
  the children without waiting (files on disk stay complete: every write is atomic);
* reports a failing child with its one-line error (a traceback goes to ``error.log`` in its run
  folder for unexpected errors) while the other seeds go on.

Children start with SIGINT ignored (inherited across spawn's exec) and arm a handler that turns
only the first SIGINT into ``KeyboardInterrupt`` once training is about to start; the parent
also sets a shared stop event that the progress callback checks. So a Ctrl-C during a child's
start-up, or a SIGINT that reached only the parent, still stops every child cleanly, and a
repeated SIGINT never interrupts a child while it saves.
"""

from __future__ import annotations

import os
import queue as queue_module
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rltool.config import ExperimentConfig
from rltool.errors import ConfigError, RltoolError
from rltool.fileio import write_text
from rltool.rundir import RunStatus, create_run_dir
from rltool.signals import stop_signals_counted, stop_signals_interrupt
from rltool.tracking import TrackingOptions, for_seed, run_tracked
from rltool.train import TrainOptions, TrainResult
from rltool.type_aliases import Report

#: status of a seed whose process raised or died
FAILED = "failed"
#: status of a seed stopped by Ctrl-C before training started, or by a second Ctrl-C before it saved
STOPPED = "stopped"
#: status of a seed that was never started because of Ctrl-C
NOT_STARTED = "not started"
#: largest number of seeds :func:`parse_seeds` accepts
MAX_SEEDS = 1000
# Children report their step count at most this often (seconds).
_SEND_INTERVAL = 0.5
# The parent wakes up this often to notice children that died without a word.
_POLL_INTERVAL = 0.2


def parse_seeds(text: str) -> list[int]:
    """Parse ``--seeds``: comma-separated seeds and inclusive ranges, e.g. ``0,1,2``, ``0-4``, ``0-2,7``.

    :param text: the option's value.
    :return: the seeds in the order given.
    :raises ConfigError: empty parts, non-integers, negative numbers, reversed ranges, duplicates,
        or more than :data:`MAX_SEEDS` seeds.
    """
    seeds: list[int] = []
    stripped = text.strip()
    if not stripped:
        raise ConfigError("--seeds: empty; give seeds such as 0,1,2 or a range such as 0-4")
    for part in stripped.split(","):
        part = part.strip()
        low, dash, high = part.partition("-")
        if not dash:
            seeds.append(_seed_number(part, text))
            continue
        first, last = _seed_number(low.strip(), text), _seed_number(high.strip(), text)
        if last < first:
            raise ConfigError(f"--seeds {text}: range '{part}' runs backwards; write it as {last}-{first}")
        if last - first + 1 > MAX_SEEDS:
            raise ConfigError(f"--seeds {text}: range '{part}' has more than {MAX_SEEDS} seeds")
        seeds.extend(range(first, last + 1))
    if len(seeds) > MAX_SEEDS:
        raise ConfigError(f"--seeds {text}: more than {MAX_SEEDS} seeds")
    seen: set[int] = set()
    for seed in seeds:
        if seed in seen:
            raise ConfigError(f"--seeds {text}: seed {seed} is listed twice; each seed runs once")
        seen.add(seed)
    return seeds


def _seed_number(word: str, text: str) -> int:
    if not word.isdigit():  # also rejects "", "-1", "1.5", "+2"
        raise ConfigError(
            f"--seeds {text}: '{word}' is not a seed (non-negative integers, e.g. 0,1,2 or 0-4)"
            if word
            else f"--seeds {text}: empty seed (e.g. 0,1,2 or 0-4; no trailing comma or open range)"
        )
    return int(word)


# ---------------------------------------------------------------------------------------------- child


def _make_queue_callback(messages: Any, index: int, stop: Any) -> Any:
    """An SB3 callback sending ``("progress", index, num_timesteps)`` and honouring the stop event."""
    from stable_baselines3.common.callbacks import BaseCallback

    class QueueProgressCallback(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.next_send = 0.0

        def _send(self) -> None:
            messages.put(("progress", index, int(self.model.num_timesteps)))

        def _on_training_start(self) -> None:
            self._send()
            if stop.is_set():
                _stop_now()

        def _on_step(self) -> bool:
            now = time.monotonic()
            if now >= self.next_send:
                self.next_send = now + _SEND_INTERVAL
                self._send()
                if stop.is_set():
                    _stop_now()
            return True

        def _on_training_end(self) -> None:
            # Learning is over: let the final save and evaluation finish whatever SIGINTs follow.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            self._send()

    return QueueProgressCallback()


def _first_sigint_only(signum: int, frame: Any) -> None:
    _stop_now()


def _stop_now() -> None:
    """Interrupt training like Ctrl-C does in ``rltool train``; later SIGINTs must not disturb the save."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _child(
    index: int,
    config: ExperimentConfig,
    options: TrainOptions,
    messages: Any,
    stop: Any,
    tracking: TrackingOptions | None = None,
) -> None:
    """Body of one seed's process: train (tracked, with ``tracking``) and send the result (or the error) to the parent."""
    assert options.run_dir is not None

    def report(line: str) -> None:
        messages.put(("log", index, line))

    try:
        from rltool.train import train

        callback = _make_queue_callback(messages, index, stop)  # imports SB3 and torch: slow
        if stop.is_set():  # Ctrl-C while this process was starting: nothing written yet
            messages.put(("skipped", index, None))
            return
        signal.signal(signal.SIGINT, _first_sigint_only)
        tracker = None
        if tracking is not None:
            from rltool.tracking import make_tracking_callback

            tracker = make_tracking_callback(for_seed(tracking, config.seed), report)
        with stop_signals_interrupt():  # SIGTERM/SIGHUP sent to this child: saved as after Ctrl-C
            result = run_tracked(
                tracker,
                lambda tracked: train(config, options, report=report, extra_callbacks=[callback, *tracked]),
            )
        messages.put(("done", index, result))
    except KeyboardInterrupt:  # before learning started: train() had nothing to save yet
        messages.put(("stopped", index, "interrupted before training started; the run folder is incomplete"))
    except RltoolError as error:
        messages.put(("error", index, str(error)))
    except BaseException as error:  # noqa: BLE001 - anything a child raises is reported, not lost
        log = options.run_dir / "error.log"
        try:
            write_text(log, traceback.format_exc())
            where = f" (traceback in {log})"
        except (OSError, RltoolError):
            where = ""
        text = str(error).strip()
        first = f": {text.splitlines()[0]}" if text else ""
        messages.put(("error", index, f"{type(error).__name__}{first}{where}"))


# ---------------------------------------------------------------------------------------------- parent


@dataclass
class _Seed:
    index: int
    config: ExperimentConfig
    run_dir: Path
    process: Any = None
    started: float = 0.0
    steps: int = 0
    result: TrainResult | None = None
    error: str | None = None
    status: str | None = None  # set for outcomes without a TrainResult
    reaped: bool = False

    @property
    def name(self) -> str:
        return f"seed {self.config.seed}"

    @property
    def running(self) -> bool:
        return self.process is not None and not self.reaped


@contextmanager
def _sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT here (and in processes started meanwhile, which inherit the disposition)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _sigint_counted(counter: list[int]) -> Iterator[None]:
    """Count SIGINTs in ``counter[0]`` instead of raising ``KeyboardInterrupt`` at an arbitrary line."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def count(signum: int, frame: Any) -> None:
        counter[0] += 1

    previous = signal.signal(signal.SIGINT, count)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Display:
    """One tqdm bar over all seeds' steps, or plain lines when there is no bar."""

    def __init__(self, seeds: list[_Seed], report: Report, progress: bool):
        self.seeds = seeds
        self.report = report
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=sum(s.config.n_timesteps for s in seeds),
                desc=f"{len(seeds)} seeds",
                unit="step",
                unit_scale=True,
                dynamic_ncols=True,
                mininterval=0.5,
                smoothing=0.05,
            )

    def say(self, line: str) -> None:
        if self.bar is None:
            self.report(line)
            return
        from tqdm import tqdm

        with tqdm.external_write_mode():
            self.report(line)

    def update(self) -> None:
        if self.bar is None:
            return
        running = sum(1 for s in self.seeds if s.running)
        ended = sum(1 for s in self.seeds if s.process is not None and not s.running)
        self.bar.set_postfix_str(f"{running} running, {ended}/{len(self.seeds)} ended", refresh=False)
        steps = sum(s.steps for s in self.seeds)
        # A run ends at a whole rollout, so it can overshoot its n_timesteps a little.
        self.bar.total = max(self.bar.total, steps)
        if steps > self.bar.n:
            self.bar.update(steps - self.bar.n)  # redraws at most every mininterval

    def close(self) -> None:
        if self.bar is not None:
            self.update()
            self.bar.refresh()
            self.bar.close()


class _Runner:
    """The parent's loop: start children, read their messages, notice exits and Ctrl-C."""

    def __init__(
        self,
        seeds: list[_Seed],
        options: TrainOptions,
        jobs: int,
        report: Report,
        tracking: TrackingOptions | None = None,
    ):
        import multiprocessing

        self.tracking = tracking
        self.seeds = seeds
        # one seed at a time may use the engines' own thread choice; parallel seeds get one core each
        self.options = replace(options, threads=options.threads if jobs == 1 else 1, progress=False)
        self.jobs = jobs
        self.context = multiprocessing.get_context("spawn")
        self.messages = self.context.Queue()
        self.stop = self.context.Event()
        self.display = _Display(seeds, report, options.progress)
        self.pending = list(seeds)
        self.interrupts = [0]  # SIGINTs received by this process
        self.handled = 0  # of which acted upon
        self.stopping = False

    def run(self) -> None:
        try:
            with _sigint_counted(self.interrupts), stop_signals_counted(self.interrupts):
                while self.step():
                    pass
        finally:
            self.display.close()
            self.messages.close()

    def step(self) -> bool:
        """One turn of the loop. :return: False when every seed has ended."""
        self.reap()
        while self.handled < self.interrupts[0]:
            self.handled += 1
            self.on_interrupt(self.handled)
        running = sum(1 for s in self.seeds if s.running)
        while self.pending and not self.stopping and running < self.jobs:
            self.start(self.pending.pop(0))
            running += 1
        if running == 0 and (not self.pending or self.stopping):
            return False
        self.drain(block=True)
        self.display.update()
        return True

    def start(self, seed: _Seed) -> None:
        seed_options = replace(self.options, run_dir=seed.run_dir)
        seed.process = self.context.Process(
            target=_child,
            args=(seed.index, seed.config, seed_options, self.messages, self.stop, self.tracking),
            name=f"rltool-seed-{seed.config.seed}",
        )
        with _sigint_ignored():  # the child starts deaf to Ctrl-C until it arms its own handler
            seed.process.start()
        seed.started = time.perf_counter()

    def handle(self, message: tuple[str, int, Any]) -> None:
        kind, index, payload = message
        seed = self.seeds[index]
        if kind == "progress":
            seed.steps = max(seed.steps, int(payload))
        elif kind == "log":
            self.display.say(f"[{seed.name}] {payload}")
        elif kind == "done":
            seed.result = payload
            seed.steps = payload.num_timesteps
        elif kind == "error":
            seed.status, seed.error = FAILED, payload
            self.display.say(f"[{seed.name}] failed: {payload}")
        elif kind == "stopped":
            seed.status, seed.error = STOPPED, payload
        elif kind == "skipped":
            seed.status = NOT_STARTED

    def drain(self, block: bool) -> None:
        try:
            self.handle(self.messages.get(timeout=_POLL_INTERVAL) if block else self.messages.get_nowait())
            while True:
                self.handle(self.messages.get_nowait())
        except queue_module.Empty:
            pass

    def reap(self) -> None:
        """Collect children that exited; a child that died silently is a failure (or a forced stop)."""
        for seed in self.seeds:
            if not seed.running or seed.process.exitcode is None:
                continue
            self.drain(block=False)  # what it sent before exiting is in the pipe already
            seed.process.join()
            seed.reaped = True
            if seed.result is None and seed.status is None:
                if self.handled >= 2:
                    seed.status, seed.error = STOPPED, "stopped by a second Ctrl-C before saving"
                else:
                    seed.status = FAILED
                    seed.error = f"process exited with code {seed.process.exitcode} before reporting a result"
                    self.display.say(f"[{seed.name}] failed: {seed.error}")
            if seed.result is not None and seed.result.status == RunStatus.INTERRUPTED and not self.stopping:
                # SIGINT reached the children but not this process: start no further seed.
                self.stopping = True
                self.stop.set()

    def on_interrupt(self, count: int) -> None:
        self.stopping = True
        self.stop.set()
        running = [s for s in self.seeds if s.running]
        if count == 1:
            self.display.say(
                f"interrupted: waiting for {len(running)} running seed(s) to save; "
                "press Ctrl-C again to stop them without waiting"
            )
            return
        for seed in running:
            seed.process.terminate()
        if running:
            self.display.say(f"stopping {len(running)} seed(s) without waiting")


def seed_configs(config: ExperimentConfig, seeds: list[int]) -> list[ExperimentConfig]:
    """:return: one copy of ``config`` per seed, in order."""
    return [replace(config, seed=seed) for seed in seeds]


def run_seeds(
    configs: list[ExperimentConfig],
    options: TrainOptions,
    jobs: int | None = None,
    report: Report = print,
    tracking: TrackingOptions | None = None,
) -> list[TrainResult]:
    """Train each config (one per seed) in its own process, at most ``jobs`` at a time.

    :param configs: the experiments, typically one config with different seeds.
    :param options: training options; ``threads``, ``progress`` and ``run_dir`` are set per child
        (1 thread, no per-child bar, a folder created here). ``options.progress`` decides whether
        the parent draws the combined bar.
    :param jobs: processes at once (>= 1); None: one per config, up to the number of CPU cores.
    :param report: where lines go (children's lines are prefixed with their seed).
    :param tracking: ``--track``: each seed is tracked as its own run (:func:`rltool.tracking.for_seed`).
    :return: one result per config, in order. ``status`` is ``"finished"``, ``"interrupted"``
        (saved after Ctrl-C, as by ``rltool train``), :data:`FAILED` (``info["error"]`` holds the
        one-line error), :data:`STOPPED` (Ctrl-C before training started, or a second Ctrl-C
        before it saved) or :data:`NOT_STARTED` (Ctrl-C came first; its empty run folder is removed).
    :raises ConfigError: no configs or ``jobs`` < 1.
    """
    if not configs:
        raise ConfigError("--seeds: no seeds to train (e.g. --seeds 0,1,2 or --seeds 0-4)")
    if jobs is None:
        jobs = os.cpu_count() or 1
    if jobs < 1:
        raise ConfigError(f"--jobs: must be >= 1, got {jobs}")
    jobs = min(jobs, len(configs))
    first = configs[0]
    report(
        f"training {first.run_name} with {len(configs)} seed(s) ({_seed_list([c.seed for c in configs])}), "
        f"{jobs} at a time, {first.n_timesteps:,} steps each"
    )
    seeds: list[_Seed] = []
    try:
        for index, config in enumerate(configs):
            seeds.append(_Seed(index, config, create_run_dir(options.log_folder, config.run_name)))
    except BaseException:
        for seed in seeds:
            _remove_if_empty(seed.run_dir)
        raise
    _Runner(seeds, options, jobs, report, tracking).run()
    return [_result_of(seed) for seed in seeds]


def _result_of(seed: _Seed) -> TrainResult:
    if seed.result is not None:
        return seed.result
    info: dict[str, Any] = {"algo": seed.config.algo, "env": seed.config.env, "seed": seed.config.seed}
    if seed.process is None or seed.status == NOT_STARTED:
        _remove_if_empty(seed.run_dir)
        return TrainResult(seed.run_dir, 0, 0.0, 0.0, NOT_STARTED, None, info)
    wall = time.perf_counter() - seed.started
    info["error"] = seed.error
    return TrainResult(seed.run_dir, seed.steps, wall, 0.0, seed.status or FAILED, None, info)


def _remove_if_empty(folder: Path) -> None:
    with suppress(OSError):  # not empty: the child wrote something, keep it
        folder.rmdir()


def _seed_list(seeds: list[int]) -> str:
    if len(seeds) > 2 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ", ".join(map(str, seeds))
