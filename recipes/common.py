"""Steps the comparison recipes share: run a logged command, tell whether a training finished."""
import os
import re
import shlex
import subprocess
import time
from pathlib import Path
from typing import Optional

from tqdm import tqdm

from dac_diveq.report.markdown import portable_command
from dac_diveq.training import checkpoint

ROOT = Path(__file__).resolve().parents[1]
#: Recipe method names -> conf file stems: the quantizer methods' own names (the rotation trick is
#: ``rotation`` everywhere: method, conf files, run folders), the paper's and the baselines codec work
#: compares with since (FSQ, SimVQ: conf/{fsq,simvq}.yml and conf/image/vqvae_{fsq,simvq}.yml at every size).
METHOD_CONF = {name: name for name in ("ste", "rotation", "ema", "gumbel", "nsvq", "diveq", "diveq_detach",
                                       "sf_diveq", "sf_diveq_detach", "fsq", "simvq")}


def shown(cmd: list) -> str:
    """``cmd`` quoted for a shell, as the command log keeps it (portable: see
    :func:`~dac_diveq.report.markdown.portable_command`)."""
    return portable_command(" ".join(shlex.quote(str(c)) for c in cmd), ROOT)


def run(cmd: list, log: list[str]) -> None:
    """Run ``cmd`` from the repository root (raising on failure) and append it to ``log``."""
    line = shown(cmd)
    log.append(line)
    print(f"$ {line}", flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True)


def run_side_by_side(cmds: list[tuple[list, Path]], log: list[str], jobs: int) -> None:
    """Run training commands, ``jobs`` at a time (raising on any failure once all have ended).

    With ``jobs > 1`` each process gets ``OMP_NUM_THREADS`` = the caller's threads (its
    ``OMP_NUM_THREADS``, else the CPU count) divided by ``jobs``, at least 1, so the runs together
    never ask for more threads than the machine has; each writes to ``train.log`` in its run folder
    (the progress bars would interleave). On 2 cores two 1-thread runs train 1.2x faster than one
    2-thread run after the other (docs/cpu_training.md).

    Args:
        cmds: (command, run folder) pairs.
        log: the recipe's command log (each command is appended).
        jobs: processes at a time.
    """
    if jobs <= 1:
        for cmd, _ in cmds:
            run(cmd, log)
        return
    threads = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, threads // jobs))}
    failed, pending, running = [], list(cmds), []
    # One bar over all the trainings' steps, read from their logs (their own bars go there).
    totals = [planned_steps(cmd) for cmd, _ in cmds]
    bar = tqdm(total=sum(totals), desc="trainings", unit="step") if all(totals) else None
    while pending or running:
        if bar is not None:
            bar.n = sum(min(steps_logged(ROOT / folder / "train.log"), total)
                        for (_, folder), total in zip(cmds, totals))
            bar.refresh()
        while pending and len(running) < jobs:
            cmd, folder = pending.pop(0)
            log.append(f"OMP_NUM_THREADS={env['OMP_NUM_THREADS']} {shown(cmd)}")
            (ROOT / folder).mkdir(parents=True, exist_ok=True)
            handle = open(ROOT / folder / "train.log", "a")
            print(f"$ {log[-1]}  (log: {folder}/train.log)", flush=True)
            running.append((subprocess.Popen([str(c) for c in cmd], cwd=ROOT, env=env, stdout=handle,
                                             stderr=subprocess.STDOUT), handle, cmd))
        process, handle, cmd = running[0]
        for candidate in running:  # the first to end frees its slot
            if candidate[0].poll() is not None:
                process, handle, cmd = candidate
                break
        else:
            time.sleep(1)
            continue
        running.remove((process, handle, cmd))
        handle.close()
        if process.returncode:
            failed.append(subprocess.CalledProcessError(process.returncode, [str(c) for c in cmd]))
    if bar is not None:
        bar.close()
    if failed:
        raise failed[0]


def planned_steps(cmd: list) -> Optional[int]:
    """The ``--num_iters`` of a training command, None if it does not say."""
    args = [str(c) for c in cmd]
    if "--num_iters" in args[:-1]:
        value = args[args.index("--num_iters") + 1]
        return int(value) if value.isdigit() else None
    return None


_TQDM_STEP = re.compile(rb"(\d+)/\d+ \[")


def steps_logged(log: Path) -> int:
    """The last step a training's progress bar wrote to ``log`` (0 before the first)."""
    try:
        with open(log, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - 4096))
            found = _TQDM_STEP.findall(handle.read())
    except OSError:
        return 0
    return int(found[-1]) if found else 0


def finished(save_path: Path, num_iters: int) -> bool:
    """Whether the run at ``save_path`` has a checkpoint at step ``num_iters`` or later."""
    state = checkpoint.load_trainer_state(save_path)  # tensors and plain data only
    return state is not None and state["step"] >= num_iters


def write_commands(path: Path, header: str, log: list[str]) -> Path:
    """Add this invocation (``header``, then the commands it ran) to the runs' command history,
    for the report's provenance: a re-run that skips finished runs keeps the commands that made them.
    The header is followed by the environment the commands ran in (the children inherit it):
    seeded runs reproduce only at the same thread count."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # Older histories may hold this machine's absolute paths: they are made portable too.
    previous = [portable_command(line, ROOT) for line in path.read_text().splitlines()] if path.is_file() else []
    env = checkpoint.environment()
    setting = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}" if "OMP_NUM_THREADS" in os.environ else "default"
    provenance = (f"# environment: {env['threads']} threads ({setting}), torch {env['torch']}, "
                  f"numpy {env['numpy']}")
    path.write_text("\n".join([*previous, header, provenance, *log]) + "\n")
    return path
