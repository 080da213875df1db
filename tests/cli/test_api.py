"""The engine as an installed library: `from eval import ...` without torch, `python -m eval`, the README session."""

import json
import re
import subprocess
import sys

import pytest
from support.paths import ROOT

import eval
from eval.index import store as index
from eval.retrievers import registry, vector
from eval.runs import export, summary
from eval.runs import store as runs
from eval.sweep import engine as sweep

# What the README promises a notebook user, and where each name is defined.
PROMISED = {
    "IndexStore": index,
    "RetrieverConfig": vector,
    "parse_sweep": registry,
    "run_sweep": sweep,
    "RunStore": runs,
    "summarize": summary,
    "export_run": export,
}


def python(code: str, cwd) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter outside the checkout, so `eval` comes from the installed package."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, timeout=900)


def test_public_names_resolve_without_importing_torch(tmp_path):
    script = (
        "import json, sys\nimport eval\n"
        "found = {name: type(getattr(eval, name)).__name__ for name in eval.__all__}\n"
        "print(json.dumps({'found': found, 'torch': 'torch' in sys.modules, 'file': eval.__file__}))"
    )
    done = python(script, tmp_path)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["file"] == str(ROOT / "eval" / "__init__.py")
    assert set(PROMISED) <= set(report["found"]) == set(eval.__all__)
    assert report["torch"] is False
    for name, module in PROMISED.items():
        assert getattr(eval, name) is getattr(module, name)
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        eval.nothing_here  # noqa: B018


def test_python_m_eval_runs_from_any_folder(tmp_path):
    done = subprocess.run([sys.executable, "-m", "eval", "--help"], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0 and "usage: python -m eval" in done.stdout


@pytest.mark.slow
def test_the_readme_notebook_session_runs(tmp_path, sample_dataset):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## In a notebook") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 12  # a ten-line session (the import is wrapped)
    done = python(code, tmp_path)
    assert done.returncode == 0, done.stderr
    (run_folder,) = (tmp_path / "lab" / "runs").iterdir()
    rows = runs.RunStore(run_folder.parent).load(run_folder.name).rows
    exported = (tmp_path / "lab" / "sample.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(exported) == len(rows) == len(sample_dataset.questions) * rows.config_id.nunique()
