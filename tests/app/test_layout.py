"""The shape of the house: app/ imports flow one way with no cycle, the runtime and the command line run
without streamlit, and no module grows past what a person reads in one sitting."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
MAX_LINES = 400

# Who may import whom inside app/: each room names the rooms it may use (besides itself).
# pages -> features -> ui / charts / links -> runtime -> analyzers -> model_zoo
ALLOWED = {
    "main": {"navigation", "warmup", "cli", "runtime", "ui"},
    "warmup": {"runtime", "charts", "features"},
    "cli": {"navigation", "warmup", "runtime"},
    "navigation": set(),
    "features": {"navigation", "ui", "charts", "links", "runtime", "features"},
    "ui": {"navigation", "links", "charts", "runtime"},
    "links": {"navigation", "ui", "runtime"},
    "charts": set(),
    "runtime": set(),
}
NO_STREAMLIT = ("app.runtime", "app.charts", "app.links.codec", "app.links.catalogue", "app.cli.analyze")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at its top or inside functions, resolved to full names."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)  # from app.ui import messages
    return found


def _graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in APP.rglob("*.py")}
    return {name: {m for m in _imports(path) if m in modules and m not in (name, "app")} for name, path in modules.items()}


def _room(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else module


def test_app_has_no_import_cycle_counting_imports_inside_functions():
    graph = _graph()
    done: set[str] = set()
    on_path: list[str] = []

    def visit(node: str) -> None:
        if node in on_path:
            pytest.fail("import cycle: " + " -> ".join(on_path[on_path.index(node):] + [node]))
        if node in done:
            return
        on_path.append(node)
        for target in sorted(graph[node]):
            visit(target)
        on_path.pop()
        done.add(node)

    for module in sorted(graph):
        visit(module)
    assert len(done) >= 30, "the graph holds every module of app/"


def test_each_room_imports_only_the_rooms_below_it():
    wrong = [f"{module} imports {target}" for module, targets in _graph().items() for target in targets
             if _room(target) != _room(module) and _room(target) not in ALLOWED[_room(module)]]
    assert wrong == []


@pytest.mark.parametrize("prefix", NO_STREAMLIT)
def test_these_modules_never_import_streamlit(prefix):
    paths = [p for p in APP.rglob("*.py") if _module_name(p) == prefix or _module_name(p).startswith(prefix + ".")]
    assert paths, prefix
    offenders = [str(p.relative_to(ROOT)) for p in paths if any(m.split(".")[0] == "streamlit" for m in _imports(p))]
    assert offenders == []


def test_the_command_lines_analysis_path_leaves_streamlit_out():
    """``zooscope analyze`` runs through the server's guards (budget, time limit, memory) without streamlit."""
    code = ("import sys; from app.cli.main import main; "
            "code = main(['analyze', '--model', 'vit-dot', '--analyzer', 'integrated_gradients', '--input', "
            "'sample:3', '--param', 'n_steps=8', '--json']); "
            "print('EXIT', code, 'streamlit' in sys.modules, 'app.runtime.guards' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "EXIT 0 False True", done.stdout


def test_the_command_line_is_refused_over_the_servers_budget(monkeypatch, capsys):
    from app.cli.main import main

    monkeypatch.setenv("ZOOSCOPE_MAX_EVALUATIONS", "100")
    code = main(["analyze", "--model", "vit-dot", "--analyzer", "integrated_gradients", "--input", "sample:3",
                 "--param", "n_steps=200"])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert "200 model evaluations" in err and "allows 100 per analysis" in err and "n_steps to 100 or less" in err


def test_no_module_of_app_is_longer_than_a_sitting():
    long = {str(p.relative_to(ROOT)): n for p in APP.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}
