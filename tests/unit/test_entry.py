"""The executable's start and end: the collector off while a command starts, and an exit that skips
the interpreter's teardown but keeps every byte of output and the command's exit status."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kubectl_agentroll import entry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "agent-rollout.yaml"
EXECUTABLE = [sys.executable, "-c", "from kubectl_agentroll.entry import run; run()"]  # as installed


def executable(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """`kubectl-agentroll ARGS` through `entry.run`, output read through a pipe."""
    return subprocess.run([*EXECUTABLE, *args], capture_output=True, text=True, timeout=60, **kwargs)


def test_the_command_starts_without_the_collector_and_a_watch_turns_it_back_on(monkeypatch):
    from kubectl_agentroll import cli
    from kubectl_agentroll.transport import ROLLOUTS
    from kubectl_agentroll.watch import Feed, Mirror, follow
    from tests.unit.fakekube import FakeCluster

    seen = []
    monkeypatch.setattr(cli, "run", lambda: seen.append(gc.isenabled()))
    try:
        assert entry.run_command() == 0
        assert seen == [False] and not gc.isenabled()
        mirror = Mirror(FakeCluster(), [Feed("rollout", ROLLOUTS, "agents")])
        assert follow(mirror, lambda: None, lambda: "done") == "done"
        assert gc.isenabled()
    finally:
        gc.enable()


@pytest.mark.parametrize("code, status", [(None, 0), (0, 0), (2, 2), (130, 130)])
def test_an_exit_code_is_the_status(code, status):
    assert entry.exit_status(code) == status


def test_an_exit_message_is_printed_and_the_status_is_1(capsys):
    assert entry.exit_status("no rollout") == 1
    assert capsys.readouterr().err == "no rollout\n"


def test_output_through_a_pipe_arrives_whole():
    done = executable("inject", "-f", str(EXAMPLE))
    assert done.returncode == 0, done.stderr
    admitted = yaml.safe_load(done.stdout)
    assert admitted["kind"] == "Rollout" and "agentroll.dev/composite-version" in admitted["metadata"]["labels"]


def test_the_status_of_a_failed_command_is_kept(tmp_path):
    usage = executable("status", "--no-such-flag")
    assert usage.returncode == 2 and "No such option" in usage.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Rollout\nmetadata: [unclosed\n")
    failed = executable("inject", "-f", str(broken))
    assert failed.returncode == 1 and "not valid YAML" in failed.stderr, failed.stderr
    assert "Traceback" not in usage.stderr + failed.stderr


def ending(script: str, **kwargs) -> subprocess.CompletedProcess:
    """Run `script` then end as the executable does: `os._exit(flushed(0))`; output buffered, as it
    is by default."""
    code = f"import os, sys\nfrom kubectl_agentroll.entry import flushed\n{script}\nos._exit(flushed(0))"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run([sys.executable, "-c", code], timeout=60, env=env, **kwargs)


def test_what_is_written_without_a_flush_still_arrives():
    done = ending("sys.stdout.write('x' * 1000); print('to stderr', file=sys.stderr, end='')",
                  capture_output=True, text=True)
    assert (done.returncode, len(done.stdout), done.stderr) == (0, 1000, "to stderr")


def test_a_reader_gone_before_the_last_flush_is_status_1():
    reader, writer = os.pipe()
    os.close(reader)
    done = ending("sys.stdout.write('row\\n' * 10)", stdout=writer, stderr=subprocess.PIPE)
    os.close(writer)
    assert done.returncode == 1 and done.stderr == b""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_output_that_cannot_be_written_is_said_and_status_1():
    with open("/dev/full", "w") as full:
        done = ending("sys.stdout.write('row\\n' * 10)", stdout=full, stderr=subprocess.PIPE, text=True)
    assert done.returncode == 1
    assert done.stderr == "error: writing the output: [Errno 28] No space left on device\n"


def test_a_reader_gone_is_status_1_without_a_traceback():
    process = subprocess.Popen([*EXECUTABLE, "--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1 and b"Traceback" not in err and b"Exception ignored" not in err, err
