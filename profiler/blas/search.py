"""Where BLAS libraries are looked for, without loading any: the dynamic linker's cache
(``ldconfig -p``), the per-build directories a distribution installs side by side
(Debian's ``/usr/lib/<triplet>/openblas-openmp/``, ``blis-pthread/``, ``atlas/``,
``blas/``), the places members name (a wheel's bundled copy), and the directories a site
names in ``BLASPROF_BLAS_PATH``.

``ldconfig``'s output and every path are hostile text: a line that is not a cache entry,
a path that is not absolute, not printable or not a regular file is skipped.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "SITE_VARIABLE",
    "candidates",
    "ld_cache",
    "libblas_so_3",
    "parse_ld_cache",
    "site_path_problems",
]

#: directories (colon-separated) where a site keeps BLAS libraries of its own
SITE_VARIABLE = "BLASPROF_BLAS_PATH"

_ENTRY = re.compile(r"^\s+(lib[\w.+-]{1,80}\.so[\w.]{0,20}) \(([\w,. -]{1,80})\) => (/\S{1,400})$")
_INTERESTING = re.compile(r"^lib(open)?blas|^libblis|^lib[st]?atlas|^libmkl_rt|^libflexiblas")
_ARCH_FLAG = {"x86_64": "x86-64", "aarch64": "AArch64", "ppc64le": "64bit"}
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f-\x9f]{1,4000}")


def _usable(path: Path) -> bool:
    text = str(path)
    return path.is_absolute() and bool(_PRINTABLE.fullmatch(text)) and path.is_file()


def ld_cache() -> dict[str, Path]:
    """The BLAS-like entries of the dynamic linker's cache for this machine's word size:
    library name (``libblas.so.3``) -> the path the linker would load."""
    exe = shutil.which("ldconfig", path=f"{os.environ.get('PATH', '')}:/sbin:/usr/sbin")
    if exe is None:
        return {}
    try:
        out = subprocess.run(
            [exe, "-p"], capture_output=True, text=True, errors="replace", timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    return parse_ld_cache(out, _ARCH_FLAG.get(platform.machine()))


def parse_ld_cache(text: str, arch_flag: str | None) -> dict[str, Path]:
    """The BLAS-like entries of ``ldconfig -p`` output whose flags name ``arch_flag``
    (``x86-64``; None: any), each an existing file; the first entry of a name wins, as
    it does for the linker."""
    entries: dict[str, Path] = {}
    for line in text.splitlines():
        match = _ENTRY.match(line)
        if not match or not _INTERESTING.match(match.group(1)):
            continue
        if arch_flag and arch_flag not in match.group(2):
            continue
        path = Path(match.group(3))
        if _usable(path):
            entries.setdefault(match.group(1), path)
    return entries


def _site_dirs() -> list[Path]:
    return [Path(d) for d in os.environ.get(SITE_VARIABLE, "").split(":") if d.strip()]


def site_path_problems() -> list[str]:
    """What is wrong with ``BLASPROF_BLAS_PATH``: each entry that is neither a directory
    nor a library file, said in one line (control characters escaped). A node task
    skips such entries; a command a person typed refuses them."""
    problems = []
    for entry in _site_dirs():
        if not (_PRINTABLE.fullmatch(str(entry)) and (entry.is_dir() or _usable(entry))):
            shown = str(entry).encode("unicode_escape").decode()[:200]
            problems.append(
                f"{SITE_VARIABLE} names '{shown}', which is not an existing directory or file "
                "with a printable name; it accepts directories and library files, separated "
                "by ':'"
            )
    return problems


def _library_dirs(cache: dict[str, Path]) -> list[Path]:
    dirs = {p.parent for p in cache.values()} | {p.resolve().parent.parent for p in cache.values()}
    dirs |= {Path("/usr/lib64"), Path("/usr/lib"), Path("/usr/lib") / _triplet()}
    return sorted(d for d in dirs if d.is_dir())


def _triplet() -> str:
    return f"{platform.machine()}-linux-gnu"


def candidates(locations: Iterable[Path] = ()) -> list[Path]:
    """Every file that may be a BLAS library, resolved, each once, in a stable order:
    the ld cache's, those in the per-build subdirectories of the library directories,
    ``locations`` (what members name), and the site's directories."""
    cache = ld_cache()
    found: list[Path] = list(cache.values())
    for directory in _library_dirs(cache):
        found += sorted(directory.glob("*/lib*.so*"))
    for directory in _site_dirs():
        found += sorted(directory.glob("lib*.so*")) if directory.is_dir() else [directory]
    named = [p for p in found if _INTERESTING.match(p.name)]
    seen: dict[Path, None] = {}
    for path in [*named, *locations]:  # members name theirs, whatever the file is called
        if _usable(path):
            seen.setdefault(path.resolve(), None)
    return list(seen)


def libblas_so_3() -> tuple[Path, Path] | None:
    """The ``libblas.so.3`` a program linked against the generic BLAS loads and the file it
    resolves to (where Debian's alternatives point): the first in ``LD_LIBRARY_PATH``'s
    directories, which the dynamic linker searches before its cache, else the cache's."""
    for directory in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        path = Path(directory) / "libblas.so.3"
        if directory and _usable(path):
            return path, path.resolve()
    path = ld_cache().get("libblas.so.3")
    return (path, path.resolve()) if path else None
