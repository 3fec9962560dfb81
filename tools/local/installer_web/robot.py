"""The Python end of the browser robot (web/installer/e2e/robot.mjs): Node drives Debian's
Chromium headless through playwright-core; the journey sends one command at a time and checks
what comes back."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

from components.packaging import ROOT

APP_DIR = ROOT / "web" / "installer"
SCRIPT = APP_DIR / "e2e" / "robot.mjs"
CHROMIUM = Path(os.environ.get("IOTMR_CHROMIUM", "/usr/bin/chromium"))
COMMAND_TIMEOUT_SECONDS = 60


class RobotError(Exception):
    """A browser command failed; the message is the robot's."""


def missing() -> str | None:
    """Why the robot cannot run here, or None."""
    if shutil.which("node") is None:
        return "Node is not installed (Debian: apt-get install nodejs npm)"
    if not (APP_DIR / "node_modules" / "playwright-core").is_dir():
        return "web/installer's dependencies are not installed (python -m tools.build_web runs npm ci)"
    if not CHROMIUM.is_file():
        return f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; or set IOTMR_CHROMIUM)"
    return None


class Robot:
    """Node and Chromium start at once (the run starts one beside the stack's evaluation); the
    first command waits for them."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            ["node", str(SCRIPT)], cwd=APP_DIR, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1)
        self._replies: queue.Queue[str] = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._read, args=(self._process.stdout, self._replies.put),
                         daemon=True, name="robot-stdout").start()
        threading.Thread(target=self._read, args=(self._process.stderr, self._stderr.append),
                         daemon=True, name="robot-stderr").start()
        self._next = 0
        self._send("launch", executablePath=str(CHROMIUM))
        self._launching = True

    @staticmethod
    def _read(stream: Any, sink: Any) -> None:
        for line in stream:
            sink(line)

    def _send(self, command: str, **args: Any) -> None:
        self._next += 1
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(json.dumps({"id": self._next, "command": command,
                                                  "args": args}) + "\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            raise RobotError(f"the robot stopped: {''.join(self._stderr)[-2000:]}") from None

    def __call__(self, command: str, **args: Any) -> Any:
        if self._launching:  # the launch's answer first
            self._launching = False
            self._answer("launch")
        self._send(command, **args)
        return self._answer(command)

    def _answer(self, command: str) -> Any:
        try:
            line = self._replies.get(timeout=COMMAND_TIMEOUT_SECONDS)
        except queue.Empty:
            raise RobotError(f"{command}: no answer in {COMMAND_TIMEOUT_SECONDS} s; "
                             f"{''.join(self._stderr)[-1000:]}") from None
        reply = json.loads(line)
        if not reply.get("ok"):
            raise RobotError(f"{command}: {reply.get('error')}")
        return reply.get("value")

    def close(self) -> None:
        try:
            if self._process.poll() is None:
                self("close")
        except RobotError:
            pass
        finally:
            if self._process.stdin is not None:  # EOF ends the robot's command loop
                self._process.stdin.close()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=5)
