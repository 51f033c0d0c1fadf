"""The wheel's build hook: ship the database the notes build, so a first lookup copies it.

The database is built here by the same code a first lookup would run (tcpkb.answer.prebuild),
from the notes and verification results this wheel ships, and named after their content
(paths.db_name). At run time it is used only when the content to build from hashes to the
same name; otherwise the lookup builds as before. tests/test_install.py holds the shipped
database and its answer index to what a build of the checkout makes, table by table.
An editable install has no copy: it reads the checkout, which builds data/tcpkb.db.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUILD = "import sys; from tcpkb.answer import prebuild; print(prebuild(sys.argv[1]))"


class PrebuiltDatabase(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict) -> None:
        if version == "editable":
            return
        self._folder = tempfile.mkdtemp(prefix="tcpkb-prebuilt-")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TCPKB_")}
        # the checkout's own notes and results, whatever the current directory; a cache of
        # its own, so the build neither reads nor writes the builder's
        env.update(TCPKB_KB=os.path.join(self.root, "kb"),
                   TCPKB_RESULTS=os.path.join(self.root, "data", "verify"),
                   XDG_CACHE_HOME=os.path.join(self._folder, "cache"),
                   PYTHONPATH=os.pathsep.join(filter(None, [self.root, env.get("PYTHONPATH")])))
        done = subprocess.run([sys.executable, "-c", BUILD, self._folder], env=env, cwd=self._folder,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"building the shipped database failed:\n{done.stderr[-3000:]}")
        db = done.stdout.split()[-1]
        for path in (db, db + ".answers", db + ".explain"):
            build_data["force_include"][path] = f"tcpkb/data/prebuilt/{os.path.basename(path)}"

    def finalize(self, version: str, build_data: dict, artifact_path: str) -> None:
        if getattr(self, "_folder", None):
            shutil.rmtree(self._folder, ignore_errors=True)
