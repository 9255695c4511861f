"""The `kubectl-agentroll` executable: the cyclic garbage collector stays off while a command starts.

Starting a command is importing ~150 modules and reading a few answers: nothing but new objects
that live until the end, which the collector would scan again and again (~5% of the CPU time of
`status NAME`). Reference counting still frees what is dropped. A command that runs on (`-w`,
`wait`) turns the collector back on when it starts following changes (`watch.follow`).
"""

import gc


def run() -> None:
    gc.disable()
    from kubectl_agentroll.cli import run as cli_run

    cli_run()
