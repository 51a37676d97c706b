"""The README's commands work as written (those that need no GPU, download or user data), and the
README's results table is what `table --update` makes of results/: the README cannot drift again."""
from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from vidtok_bench.cli import main

ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDERS = re.compile(r"\b(DIR|OUT|N|PATH)\b|/data/|/ckpts/")
#: sub-commands run as written; `run` lines are composed with --cfg (a full run is tested elsewhere)
RUN_AS_WRITTEN = {"table", "compare", "gate", "rd", "list"}


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    cmds = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            if line.startswith("vidtok-bench "):
                cmds.append(line)
    return cmds


def test_readme_has_commands():
    cmds = readme_commands()
    assert len(cmds) >= 10 and any(c.startswith("vidtok-bench table") and "--update README.md" in c for c in cmds)


@pytest.mark.parametrize("cmd", readme_commands())
def test_readme_command_runs(cmd, tmp_path, monkeypatch, capsys):
    argv = shlex.split(cmd)[1:]
    sub = argv[0]
    if sub == "run":
        if PLACEHOLDERS.search(cmd):
            pytest.skip("needs user data or a checkpoint")
        argv = ["run", "--cfg", *[a for a in argv[1:] if a != "--cfg"]]
    elif sub not in RUN_AS_WRITTEN:
        pytest.skip(f"'{sub}' is exercised by its own tests")
    for item in ("README.md", "results", "docs"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    monkeypatch.chdir(tmp_path)
    before = (tmp_path / "README.md").read_text()
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err
    # regenerating the table from results/ changes nothing: the committed README is up to date
    assert (tmp_path / "README.md").read_text() == before
