"""The README's Python worked example, run as written."""
import os
import re
import subprocess

import pytest

from conftest import PYTHON, TOP, cmd

pytest.importorskip("numpy")


def _blocks():
    text = open(os.path.join(TOP, "README.md")).read()
    found = dict(re.findall(r"<!-- example: (\S+)[^>]*-->\n```\w+\n(.*?)```", text, re.S))
    return found["analyzer.py"], found["shell"]


def test_readme_analyzer_example(chan, tmp_path):
    code, shell = _blocks()
    n = chan()
    steps = [line[2:] for line in shell.splitlines() if line.startswith("$ ")]
    expected = [line for line in shell.splitlines() if line and not line.startswith("$ ")]
    assert len(steps) == 3 and steps[2].startswith("/usr/bin/python3 analyzer.py")
    (tmp_path / "analyzer.py").write_text(code)
    # the first two steps, on this test's channel
    cmd("sh", "-c", steps[0][:-len("temp")] + n)
    cmd("sh", "-c", steps[1][:-len("temp")] + n)
    out = subprocess.run([PYTHON, str(tmp_path / "analyzer.py"), n], capture_output=True, text=True,
                         timeout=60, env=os.environ)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines and lines[-1] == expected[-1]
    # a running statistic: the counts grow to the total
    counts = [int(line.split()[0]) for line in lines]
    assert counts == sorted(counts) and counts[-1] == 100
