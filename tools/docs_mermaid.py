"""The Mermaid renderer the docs site ships, so that its diagrams draw with no network.

Material for MkDocs draws every ```` ```mermaid ```` block in the browser, and loads Mermaid
from a public CDN unless the page already defines it; offline, behind a firewall or on a
docs mirror every diagram would stay raw source. So the site carries its own copy:

* ``python tools/docs_mermaid.py`` (the ``docs`` nox session runs it) fetches the npm
  package ``mermaid@VERSION`` with ``npm pack`` — one tarball, no dependency tree — checks
  the tarball against the pinned npm integrity hash, and extracts ``dist/mermaid.min.js``
  and the licence into ``.cache/mermaid/VERSION/``. It does nothing when they are there.
* As an MkDocs hook (``hooks:`` in ``mkdocs.yml``) it adds that file to every build as
  ``assets/javascripts/mermaid.min.js``, after checking its pinned SHA-256, and fails the
  build, saying what to run, when the file is missing or altered. ``mkdocs.yml`` loads it
  with ``extra_javascript`` (deferred, so it runs before Material's ``DOMContentLoaded``
  handler, which then finds ``mermaid`` defined and loads nothing).

The version is pinned to the major that Material's bundle is written for (it would load
``mermaid@11``). To upgrade: change :data:`VERSION`, run this script with ``--print-pins``
and copy the two hashes it prints after checking the release.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

VERSION = "11.17.2"
#: The npm ``integrity`` field of ``mermaid@VERSION`` (SHA-512 of the tarball).
TARBALL_INTEGRITY = (
    "sha512-V6K3C8EBdEsPFZXSKMJe6ppQOENxuHARr9GvHX4hh47lAbhMRD9q"
    "f4oEK7LoaRQxULMa80/qt5gHO73aCleBBg=="
)
#: SHA-256 of ``dist/mermaid.min.js`` in that tarball, checked again at every build.
SCRIPT_SHA256 = "581ed7d74bd9048d0e3a91363927d72ef22942d7722546b27f7cc29e35390eb8"

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "mermaid" / VERSION
SCRIPT = CACHE / "mermaid.min.js"
LICENSE = CACHE / "LICENSE"
#: Where the site serves the script (``extra_javascript`` in ``mkdocs.yml`` names it).
SITE_SCRIPT = "assets/javascripts/mermaid.min.js"
SITE_LICENSE = "assets/javascripts/mermaid.LICENSE.txt"
FETCH = "python3 tools/docs_mermaid.py"


class MermaidMissing(RuntimeError):
    """The pinned Mermaid script is not in the cache, or is not the pinned file."""


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def check_script() -> Path:
    """The cached ``mermaid.min.js`` after checking its hash; raise :class:`MermaidMissing`
    saying what to run when it is absent or differs."""
    if not (SCRIPT.is_file() and LICENSE.is_file()):
        raise MermaidMissing(
            f"the docs ship Mermaid {VERSION}, which is not in {SCRIPT.relative_to(ROOT)}; "
            f"run `{FETCH}` (needs npm; `python3 -m nox -s docs` runs it)"
        )
    if _sha256(SCRIPT.read_bytes()) != SCRIPT_SHA256:
        raise MermaidMissing(
            f"{SCRIPT.relative_to(ROOT)} is not the pinned Mermaid {VERSION} (SHA-256 "
            f"differs); delete {CACHE.relative_to(ROOT)} and run `{FETCH}`"
        )
    return SCRIPT


def fetch(*, print_pins: bool = False) -> Path:
    """Fetch and extract ``mermaid@VERSION`` unless the pinned script is cached; return
    the script's path. Raise :class:`MermaidMissing` when npm is missing or the tarball
    does not match :data:`TARBALL_INTEGRITY`."""
    if not print_pins and SCRIPT.is_file() and LICENSE.is_file():
        return check_script()
    npm = shutil.which("npm")
    if npm is None:
        raise MermaidMissing(
            "fetching Mermaid for the docs needs npm (Debian: `apt-get install npm`)"
        )
    with tempfile.TemporaryDirectory(prefix="fsmflow-mermaid-") as tmp:
        done = subprocess.run(
            [npm, "pack", f"mermaid@{VERSION}", "--json", "--pack-destination", tmp],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp,
        )
        if done.returncode != 0:
            raise MermaidMissing(f"npm pack mermaid@{VERSION} failed:\n{done.stderr}")
        packed: list[dict[str, Any]] = json.loads(done.stdout)
        tarball = (Path(tmp) / packed[0]["filename"]).read_bytes()
    if print_pins:
        with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
            script = _member(archive, "package/dist/mermaid.min.js")
        print(f'TARBALL_INTEGRITY = "{_integrity(tarball)}"')
        print(f'SCRIPT_SHA256 = "{_sha256(script)}"')
        return SCRIPT
    if _integrity(tarball) != TARBALL_INTEGRITY:
        raise MermaidMissing(
            f"the npm tarball of mermaid@{VERSION} does not match the pinned integrity hash"
        )
    with tarfile.open(fileobj=io.BytesIO(tarball)) as archive:
        script = _member(archive, "package/dist/mermaid.min.js")
        license_text = _member(archive, "package/LICENSE")
    CACHE.mkdir(parents=True, exist_ok=True)
    LICENSE.write_bytes(license_text)
    SCRIPT.write_bytes(script)
    return check_script()


def _member(archive: tarfile.TarFile, name: str) -> bytes:
    extracted = archive.extractfile(name)
    if extracted is None:
        raise MermaidMissing(f"the mermaid@{VERSION} tarball has no file {name}")
    return extracted.read()


# -- MkDocs hook --------------------------------------------------------------------------


def on_files(files: Any, config: Any) -> Any:
    """Add the pinned Mermaid script and its licence to the site."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    try:
        script = check_script()
    except MermaidMissing as exc:
        raise PluginError(str(exc)) from None
    files.append(File.generated(config, SITE_SCRIPT, abs_src_path=str(script)))
    files.append(File.generated(config, SITE_LICENSE, abs_src_path=str(LICENSE)))
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--print-pins",
        action="store_true",
        help="fetch the tarball and print its hashes instead of checking them",
    )
    args = parser.parse_args(argv)
    try:
        path = fetch(print_pins=args.print_pins)
    except MermaidMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not args.print_pins:
        print(f"Mermaid {VERSION}: {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
