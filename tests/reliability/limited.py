"""Run an entry point with its address space limited: ``python tests/reliability/limited.py MiB -m
dac_diveq info X`` (or ``MiB scripts/report.py ...``); ``MiB --fsize BYTES ...``
also limits the size of every file it writes.

The heavy libraries are imported first; then ``RLIMIT_AS`` is set to what the process has mapped
plus ``MiB``, so that a file that makes a reader allocate gigabytes ends in a ``MemoryError`` (or
an abort) instead of taking the machine, and a reader that checks sizes first is unaffected.

``RLIMIT_FSIZE`` is a real full disk for the writer, without root or a mount: a write past the
limit fails (``EFBIG``, with ``SIGXFSZ`` ignored) as a write to a full file system does.
"""
import resource
import runpy
import signal
import sys


def mapped_bytes() -> int:
    """The process's virtual memory size now (``VmSize``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmSize in /proc/self/status")


def main() -> None:
    """Parse ``MiB [--fsize BYTES] (-m MODULE | SCRIPT) ARGS...``, import, limit, run."""
    headroom = int(sys.argv[1]) * 2 ** 20
    fsize, arguments = None, sys.argv[2:]
    if arguments[0] == "--fsize":
        fsize, arguments = int(arguments[1]), arguments[2:]
    target, rest = arguments[0], arguments[1:]
    import numpy  # noqa: F401  (imported before the limit: their mappings are not the file's doing)
    import soundfile  # noqa: F401
    import torch  # noqa: F401
    import audiotools  # noqa: F401
    import tqdm  # noqa: F401
    import dac_diveq.codec.cli  # noqa: F401

    limit = mapped_bytes() + headroom
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    if fsize is not None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    if target == "-m":
        sys.argv = [rest[0], *rest[1:]]
        runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
    else:
        sys.argv = [target, *rest]
        runpy.run_path(target, run_name="__main__")


if __name__ == "__main__":
    main()
