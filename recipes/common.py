"""Steps the comparison recipes share: run a logged command, tell whether a training finished."""
import os
import shlex
import subprocess
from pathlib import Path

from dac_diveq.training import checkpoint

ROOT = Path(__file__).resolve().parents[1]
#: Recipe method names -> conf file stems (``rt`` is the rotation trick).
METHOD_CONF = {"ste": "ste", "rt": "rt", "rotation": "rt", "ema": "ema", "gumbel": "gumbel", "nsvq": "nsvq",
               "diveq": "diveq", "diveq_detach": "diveq_detach", "sf_diveq": "sf_diveq",
               "sf_diveq_detach": "sf_diveq_detach"}


def run(cmd: list, log: list[str]) -> None:
    """Run ``cmd`` from the repository root (raising on failure) and append it to ``log``."""
    line = " ".join(shlex.quote(str(c)) for c in cmd)
    log.append(line)
    print(f"$ {line}", flush=True)
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True)


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
    previous = path.read_text().splitlines() if path.is_file() else []
    env = checkpoint.environment()
    setting = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}" if "OMP_NUM_THREADS" in os.environ else "default"
    provenance = (f"# environment: {env['threads']} threads ({setting}), torch {env['torch']}, "
                  f"numpy {env['numpy']}")
    path.write_text("\n".join([*previous, header, provenance, *log]) + "\n")
    return path
