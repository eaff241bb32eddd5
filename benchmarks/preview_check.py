"""`make preview-check`: vs-preview opens examples/slowmo_x4.vpy on the demo clip at a given frame,
headless under Xvfb, shows it, and closes cleanly; nothing of ours may appear in its error log.

    python benchmarks/preview_check.py [--frame 5] [--screenshot out/preview.png]

It starts itself under ``xvfb-run`` and, inside, runs vs-preview's own ``main`` with a main window
that watches for the frame: once frame N is on screen (and no script error dialog is open) it saves
a screenshot if asked and closes the window like a user would, so vs-preview exits through its own
shutdown path. Needs the ``preview`` extra and, on Debian, ``xvfb`` and the X libraries Qt loads
(``make preview-deps``).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "slowmo_x4.vpy"
CLIP = ROOT / "examples" / "media" / "city_cc0_2s.mkv"
# Shared libraries Qt's X11 platform plugin and QtMultimedia load that a minimal Debian lacks.
DEBIAN_PACKAGE_OF = {
    "libxcb-icccm.so.4": "libxcb-icccm4", "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-cursor.so.0": "libxcb-cursor0", "libpulse.so.0": "libpulse0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0", "libxkbcommon.so.0": "libxkbcommon0",
    "libEGL.so.1": "libegl1", "libGL.so.1": "libgl1", "libfontconfig.so.1": "libfontconfig1",
    "libxcb-render-util.so.0": "libxcb-render-util0", "libxcb-image.so.0": "libxcb-image0",
    "libxcb-randr.so.0": "libxcb-randr0", "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-xkb.so.1": "libxcb-xkb1", "libdbus-1.so.3": "libdbus-1-3",
}
# What in vs-preview's log would be ours: our plugin, our package, or a Python traceback.
OURS = re.compile(r"slomo|superslomo|Traceback", re.IGNORECASE)


def missing_libraries() -> list[str]:
    """Shared libraries that Qt's xcb plugin or QtMultimedia cannot find (empty when all are there)."""
    try:
        import PyQt6
    except ImportError:
        return []
    qt = Path(PyQt6.__file__).parent / "Qt6"
    missing: set[str] = set()
    for lib in [qt / "plugins" / "platforms" / "libqxcb.so", *qt.glob("lib/libQt6Multimedia.so.*")]:
        if lib.exists():
            ldd = subprocess.run(["ldd", str(lib)], capture_output=True, text=True).stdout
            missing |= set(re.findall(r"^\s*(\S+) => not found", ldd, re.MULTILINE))
    return sorted(missing)


def outer(args: argparse.Namespace) -> int:
    try:
        import vspreview  # noqa: F401
    except ImportError as e:
        print(f"error: vs-preview is not installed ({e}): .venv/bin/pip install '.[preview]'", file=sys.stderr)
        return 1
    if shutil.which("xvfb-run") is None:
        print("error: xvfb-run not found; on Debian/Ubuntu: make preview-deps (apt-get install xvfb and the X "
              "libraries Qt needs)", file=sys.stderr)
        return 1
    missing = missing_libraries()
    if missing:
        packages = sorted({DEBIAN_PACKAGE_OF.get(lib, f"(the package with {lib})") for lib in missing})
        print(f"error: Qt cannot load {', '.join(missing)}; on Debian/Ubuntu: apt-get install {' '.join(packages)} "
              "(make preview-deps)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="preview-check-") as work:
        # vs-preview keeps per-script state in .vsjet/ under the working folder (with --preserve-cwd)
        # and its global settings under the home; both go to a scratch folder, not the repository.
        env = {**os.environ, "HOME": work, "XDG_CONFIG_HOME": str(Path(work) / ".config"),
               "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
        env.pop("QT_QPA_PLATFORM", None)
        inner = [sys.executable, str(Path(__file__).resolve()), "--inner", "--frame", str(args.frame),
                 "--src", str(args.src.resolve())]
        if args.screenshot:
            inner += ["--screenshot", str(args.screenshot.resolve())]
        cmd = ["xvfb-run", "-a", "-s", "-screen 0 1600x1000x24", *inner]
        # A session of its own, so that a hang can be ended with Xvfb and all (xvfb-run does not pass
        # signals on).
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            print(f"preview-check: FAILED, vs-preview did not show frame {args.frame} and exit within "
                  f"{args.timeout:.0f} s", file=sys.stderr)
            return 1
    res = subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)
    log = res.stderr.strip()
    ours = [line for line in log.splitlines() if OURS.search(line)]
    print(res.stdout.strip())
    if log:
        print("vs-preview's log (stderr):\n" + "\n".join(f"  | {line}" for line in log.splitlines()))
    if res.returncode != 0 or ours or f"shown frame {args.frame}" not in res.stdout:
        reason = f"exit code {res.returncode}" if res.returncode else "lines of ours in the log:\n" + "\n".join(ours)
        if not ours and res.returncode == 0:
            reason = f"frame {args.frame} was not reported shown"
        print(f"preview-check: FAILED ({reason})", file=sys.stderr)
        return 1
    print(f"preview-check: passed (vs-preview showed frame {args.frame} of {SCRIPT.name} and exited with 0)")
    return 0


def inner(args: argparse.Namespace) -> int:
    """Runs inside Xvfb: vs-preview's own main, with a main window that closes itself once frame N is shown."""
    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication
    from vspreview import init

    frame, screenshot = args.frame, args.screenshot
    result: dict[str, str] = {}

    class CheckedWindow(init.MainWindow):  # type: ignore[misc,name-defined]
        def __init__(self, *a: object, **kw: object) -> None:
            super().__init__(*a, **kw)
            self._ticks = 0
            self._seen = 0
            self._poll = QTimer(self)
            self._poll.timeout.connect(self._check)
            self._poll.start(100)

        def _check(self) -> None:
            self._ticks += 1
            if self.script_error_dialog.isVisible():
                result["error"] = self.script_error_dialog.label.text()
                self._finish()
            elif self.isVisible() and self.outputs and int(self.current_output.last_showed_frame) == frame:
                self._seen += 1
                if self._seen == 3:  # a few event-loop turns after the switch: painted
                    output = self.current_output
                    props = dict(output.props) if output.props is not None else {}
                    result["shown"] = (f"shown frame {frame} of {output.total_frames}, "
                                       f"{output.width}x{output.height}, SloMoTime={props.get('SloMoTime')}")
                    if screenshot:
                        self.grab().save(str(screenshot))
                    self._finish()
            elif self._ticks > 1200:
                result["error"] = f"frame {frame} not shown after 120 s"
                self._finish()

        def _finish(self) -> None:
            self._poll.stop()
            self.script_error_dialog.close()
            self.close()  # vs-preview's own shutdown (saves its state, releases the script)
            QApplication.quit()  # closing a window hidden by a script error does not end the event loop

    init.MainWindow = CheckedWindow  # type: ignore[attr-defined]
    try:
        code = init.main(["--preserve-cwd", "--frame", str(frame), str(SCRIPT), f"src={args.src}"], no_exit=True)
    except SystemExit as e:
        code = int(e.code or 0)
    if "shown" in result:
        print(result["shown"], flush=True)
    if "error" in result:
        print(f"vs-preview showed an error: {result['error']}", file=sys.stderr)
        return 1
    return int(code)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frame", type=int, default=5, help="frame to open at (default 5: an interpolated one)")
    parser.add_argument("--src", type=Path, default=CLIP, help="the clip slowmo_x4.vpy opens (default: the demo clip)")
    parser.add_argument("--screenshot", type=Path, help="save the window as a PNG")
    parser.add_argument("--timeout", type=float, default=240, help="seconds before giving up (default 240)")
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    return inner(args) if args.inner else outer(args)


if __name__ == "__main__":
    raise SystemExit(main())
