"""The `kubectl-agentroll` executable: a command starts without the cyclic garbage collector and
ends without the interpreter's teardown.

Starting a command is importing ~150 modules and reading a few answers: nothing but new objects
that live until the end, which the collector would scan again and again (~5% of the CPU time of
`status NAME`). Reference counting still frees what is dropped. A command that runs on (`-w`,
`wait`) turns the collector back on when it starts following changes (`watch.follow`).

Ending, the interpreter would collect, tear down every module and free every object one by one
(~15 ms of a ~130 ms `status NAME`), all of which the kernel does at once when the process
exits. So once the command is over and its output flushed, the process exits there. Nothing of
ours needs the teardown: no atexit hook, no file left open for writing, and the threads a command
starts are daemons whose work is done or abandoned by then.
"""

import gc
import os
import sys


def exit_status(code: object) -> int:
    """The status Python's own exit would give `SystemExit(code)`; a message is printed first."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def run_command() -> int:
    """Run the command line with the collector off; its exit status."""
    gc.disable()
    from kubectl_agentroll.cli import run as cli_run

    try:
        cli_run()
    except SystemExit as done:
        return exit_status(done.code)
    return 0


def flushed(status: int) -> int:
    """Flush what the command wrote. A reader gone (`| head`) makes it 1, silently, as click does;
    any other failure to write (a full disk) is said in one line, and makes it 1 too."""
    complaint = ""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        status = status or 1
    except (OSError, ValueError) as err:
        complaint = f"error: writing the output: {err}\n"
        status = status or 1
    try:
        sys.stderr.write(complaint)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    return status


def run() -> None:
    os._exit(flushed(run_command()))
