"""The extension package: Blender's own builder makes the zip from the repository, and real Blender (`bpy`) installs
and enables it; the add-on's code imports bpy and the standard library only."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from blender_helpers import REPO, build_extension

INSTALL_SCRIPT = r"""
import sys
import addon_utils
import bpy

zip_path = sys.argv[1]
result = bpy.ops.extensions.package_install_files(filepath=zip_path, repo="user_default", enable_on_install=True)
assert result == {"FINISHED"}, result
name = "bl_ext.user_default.dance_any_beat"
assert name in bpy.context.preferences.addons, list(bpy.context.preferences.addons.keys())
assert bpy.context.scene.dance_any_beat.quality == "standard"
assert bpy.context.preferences.addons[name].preferences.backend == "LOCAL"
assert "torch" not in sys.modules, "the add-on imported torch"
for _ in range(2):
    addon_utils.disable(name, default_set=True, handle_error=lambda e: (_ for _ in ()).throw(e))
    assert not hasattr(bpy.types.Scene, "dance_any_beat")
    assert not hasattr(bpy.types, "DANCE_ANY_BEAT_PT_sequencer")
    addon_utils.enable(name, default_set=True, handle_error=lambda e: (_ for _ in ()).throw(e))
    assert hasattr(bpy.types.Scene, "dance_any_beat") and hasattr(bpy.types, "DANCE_ANY_BEAT_OT_generate")
print("INSTALLED", bpy.utils.extension_path_user(name))
"""


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory) -> Path:
    return build_extension(tmp_path_factory.mktemp("ext") / "dance_any_beat.zip")


def test_zip_has_the_manifest_at_its_root_and_bundles_addon_backend_presets(built_zip):
    names = zipfile.ZipFile(built_zip).namelist()
    for required in ("blender_manifest.toml", "__init__.py", "LICENSE", "pyproject.toml",
                     "dance_any_beat_addon/__init__.py", "dance_any_beat_addon/blender/operators.py",
                     "backend/dance_any_beat/pipeline.py", "presets/quality.toml", "presets/styles.toml"):
        assert required in names, required
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc") or ".egg-info" in n]
    assert not [n for n in names if n.split("/")[0] not in
                {"blender_manifest.toml", "__init__.py", "LICENSE", "README.md", "pyproject.toml",
                 "dance_any_beat_addon", "backend", "presets"}]


@pytest.mark.slow
def test_zip_installs_and_enables_in_blender(built_zip, tmp_path):
    env = {**os.environ, "BLENDER_USER_RESOURCES": str(tmp_path / "user"), "HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-c", "import bpy\n" + INSTALL_SCRIPT, str(built_zip)], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "INSTALLED" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-3000:]
    installed = tmp_path / "user" / "extensions" / "user_default" / "dance_any_beat"
    assert (installed / "blender_manifest.toml").is_file()
    assert not (tmp_path / "home" / ".config" / "blender").exists()  # (Blender itself makes ~/.cache/thumbnails)


def test_addon_imports_only_bpy_and_the_standard_library():
    allowed = set(sys.stdlib_module_names) | {"bpy", "addon_utils"}
    for path in list((REPO / "dance_any_beat_addon").rglob("*.py")) + [REPO / "__init__.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = [node.module.split(".")[0]]
            else:
                continue
            bad = [r for r in roots if r not in allowed]
            assert not bad, f"{path.relative_to(REPO)} imports {bad}"
    # the bpy-free half really is: it imports in a clean interpreter without pulling in bpy or numpy
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); "
            "import dance_any_beat_addon.client, dance_any_beat_addon.jobs, dance_any_beat_addon.backend, "
            " dance_any_beat_addon.timebase, dance_any_beat_addon.presets, dance_any_beat_addon.local_server, "
            " dance_any_beat_addon.backend_setup, dance_any_beat_addon.command_line; "
            "assert 'bpy' not in sys.modules and 'numpy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
