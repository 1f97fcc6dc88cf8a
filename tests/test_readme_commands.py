"""Every command in the README's ``bash`` blocks runs as written, from a scratch folder, and
ends with a sentence a newcomer can read: exit status 0 and a closing line of words (not a
traceback, a bare path, a number or JSON).

Commands are read from README.md at test time, so a command added there is tested without
editing this file. Files a command names that the README itself provides (the study file of the
Sweeps section) are written from the README's own text. The few commands that cannot run here
are skipped with the reason in :data:`SKIP` (never silently); a command whose full data set is
too slow for CI runs on fewer rows, as :data:`SMALLER` lists with its reason.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: Command start (or a flag it carries) -> why the test does not run it.
SKIP = {
    "python3 -m venv": "creates a fresh venv: CI's .ci/run does exactly this on every run",
    ". .venv/bin/activate": "activates that venv: this test already runs inside one",
    "pip install": "installs from the package index: CI's .ci/run does exactly this",
    "pytest": "the test suite itself",
    "python -m npusim.dropin": "runs the user's own torch_npu script (a placeholder name here) "
                               "and needs torch (extra torch); tests/test_dropin*.py run the "
                               "drop-in mode on real scripts",
    "--ray": "needs Ray (extra ray) and a cluster; tests/test_sweep*.py compare the pool with "
             "Ray where Ray is installed",
}


#: README command -> why it fails today (a known bug, reported; strict: the fix turns it green
#: and this entry must go).
KNOWN_FAILING: dict[str, str] = {}

#: README command -> (the command the test runs instead, why). Only narrowing the data, never the
#: code path: the same subcommand and flags on fewer rows.
SMALLER = {
    "npusim validate --out report/": (
        "npusim validate --rows F,H --out report/",
        "all 30 rows take about 10 minutes on a loaded 2-core machine; the F and H rows run the "
        "same command path (parallel rows, per-row progress, report files, closing line)"),
}


def readme_commands(text: str) -> list[tuple[int, str]]:
    """(README line, command) for each command line of each ```bash block; ``\\`` continuations
    joined, trailing ``# comments`` removed, ``a && b`` split into its commands."""
    out = []
    for m in re.finditer(r"^```bash\n(.*?)^```", text, re.S | re.M):
        line = text[:m.start()].count("\n") + 2
        body = m.group(1).replace("\\\n", " ")
        for i, raw in enumerate(body.splitlines()):
            cmd = re.sub(r"\s+#\s.*$", "", raw).strip()
            if cmd and not cmd.startswith("#"):
                out += [(line + i, " ".join(part.split())) for part in cmd.split(" && ")]
    return out


def study_file(text: str) -> str:
    """The YAML block the README introduces with "A study file:"."""
    m = re.search(r"A study file:\s*\n\s*```yaml\n(.*?)^```", text, re.S | re.M)
    assert m, "README: the Sweeps section's study file block is missing"
    return m.group(1)


def closing_sentence_problem(line: str) -> str | None:
    """Why ``line`` is not a closing sentence a newcomer understands (None when it is)."""
    prose = [t for t in line.split() if not re.search(r"[/=]|\.\w+$", t)]  # no paths, k=v
    words = [t for t in prose if re.fullmatch(r"[A-Za-z][A-Za-z'-]+", t.strip("()[]{}|,;:.%"))]
    if not line.strip():
        return "empty closing line"
    if line.lstrip().startswith(("Traceback", "{", "[")) or "Error:" in line.split(" ")[0]:
        return "a traceback or raw data, not a sentence"
    if len(words) < 4:
        return f"fewer than four words: {line!r}"
    return None


TEXT = README.read_text(encoding="utf-8")
COMMANDS = readme_commands(TEXT)


def _skip_reason(cmd: str) -> str | None:
    for key, reason in SKIP.items():
        if cmd.startswith(key) or f" {key}" in f" {cmd}":
            return reason
    return None


def test_the_readme_has_commands_and_the_extraction_reads_them():
    """The extraction finds the Using-it commands, joins continuations and drops comments."""
    cmds = [c for _, c in COMMANDS]
    assert "npusim socs" in cmds
    assert any(c.startswith("npusim run weight_quant_batchmatmul") for c in cmds)
    assert not [c for c in cmds if "#" in c or c.endswith("\\")]
    sample = "```bash\nnpusim a --x 1 \\\n    --y 2   # note\npip install x && npusim b\n```\n"
    assert readme_commands(sample) == [(2, "npusim a --x 1 --y 2"), (3, "pip install x"),
                                       (3, "npusim b")]


def test_closing_sentence_rule():
    assert closing_sentence_problem("report: /tmp/x/report.md") is not None
    assert closing_sentence_problem("Traceback (most recent call last):") is not None
    assert closing_sentence_problem("9 SoCs; npusim socs show NAME for one SoC's fields") is None
    assert closing_sentence_problem("report written to r/report.md: best time per case") is None
    assert closing_sentence_problem("validated 11 rows (0 unsupported): median |error| 8 %") is None


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch folder with the README's study file, and a private result cache (cold runs)."""
    d = tmp_path_factory.mktemp("readme")
    (d / "study.yaml").write_text(study_file(TEXT), encoding="utf-8")
    return d


#: the commands this test runs; the others are run elsewhere (SKIP says where) and are not
#: collected as skipped tests
RUN = [(n, c) for n, c in COMMANDS if _skip_reason(c) is None]
IDS = [f"{i:02d}-L{n}" for i, (n, _) in enumerate(RUN)]


def test_every_command_is_run_here_or_has_its_reason():
    """Each README command is either run by the test below or matched by one SKIP entry (a
    reason naming who runs it); every SKIP entry still matches a README command."""
    assert RUN, "no README command to run"
    for key in SKIP:
        assert any(_skip_reason(c) == SKIP[key] for _, c in COMMANDS), f"stale SKIP entry {key!r}"


@pytest.mark.parametrize(("line", "cmd"), RUN, ids=IDS)
def test_readme_command_runs_and_ends_with_a_sentence(line, cmd, workdir, request):
    """README line ``line``: exit 0, closing line a sentence."""
    if cmd in KNOWN_FAILING:
        request.applymarker(pytest.mark.xfail(reason=KNOWN_FAILING[cmd], strict=True))
    cmd = SMALLER.get(cmd, (cmd, ""))[0]
    argv = shlex.split(cmd)
    if argv[0] == "python":
        argv[0] = sys.executable
    # the commands of this environment first (a venv's npusim, not another install on PATH)
    path = os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    if argv[0] == "npusim":
        argv[0] = shutil.which("npusim", path=path) or argv[0]
    env = dict(os.environ, XDG_CACHE_HOME=str(workdir / "cache"), MPLBACKEND="Agg", PATH=path)
    proc = subprocess.run(argv, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=1200)
    assert proc.returncode == 0, (f"README line {line}: {cmd}\nexit {proc.returncode}\n"
                                  f"{proc.stderr[-2000:]}")
    lines = [x for x in proc.stdout.splitlines() if x.strip()]
    assert lines, f"README line {line}: {cmd} printed nothing"
    problem = closing_sentence_problem(lines[-1])
    assert problem is None, f"README line {line}: {cmd}: closing line {problem}"
